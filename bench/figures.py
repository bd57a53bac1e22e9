"""The shape of a figure (a value next to its ceiling measured in the same run) and the helpers the
scenarios' figure functions share. bench/run.py's figures() puts them together, in the report's order."""


def figure(value, ceiling, unit, target: str, met, note: str = "", ceiling_name: str = "") -> dict:
    return {
        "value": value,
        "ceiling": ceiling,
        "ceiling_name": ceiling_name,
        "ratio": ratio(value, ceiling),
        "unit": unit,
        "target": target,
        "met": met,
        "note": note,
    }


def ratio(value, ceiling):
    if value is None or not ceiling:
        return None
    return round(value / ceiling, 3)


def met_ratio(value, ceiling, at_least: float | None = None, at_most: float | None = None):
    rt = ratio(value, ceiling)
    if rt is None:
        return None
    return (at_least is None or rt >= at_least) and (at_most is None or rt <= at_most)


def per_1000(cost: dict, completed: int) -> dict:
    if not completed:
        return {}
    return {
        kind: {"cpu_s_per_1000": round(v["cpu_s"] / completed * 1000, 2), "peak_rss_mb": v["peak_rss_mb"]}
        for kind, v in cost.items()
    }


def publish_variants(r: dict) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """(key suffix, load-run label part, note) of the default publish setting and of the A/B one: the
    A/B runs' figures carry the other setting's name (`api_p99_c16_relay_only`)."""
    pub = r.get("publish", {})
    default_note = f"publish {pub.get('default', '?')}: OUTBOX_PUBLISH_INLINE={pub.get('default_inline')}"
    ab_note = f"A/B: OUTBOX_PUBLISH_INLINE={not pub.get('default_inline')}"
    ab_key, ab_slug = pub.get("ab_key", ""), pub.get("ab", "").replace(" ", "-")
    return ("", "", default_note), (f"_{ab_key}", f"-{ab_slug}", ab_note)
