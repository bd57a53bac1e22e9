"""The publish A/B. Which publish the product's default settings use (OUTBOX_PUBLISH_INLINE's effective
value, read from the settings as every process of this run loads them, --env included), and the other one,
measured by a second web server + relay pair with that setting. Runs are labelled by these values."""

from bench import procs

LABELS = {True: "inline", False: "relay only"}


class PublishAB:
    def __init__(self, results: dict, servers):
        self.results, self.servers = results, servers
        self.default = self.label = self.slug = self.key = ""  # set by setup()
        self.env: dict = {}
        self.running: list[procs.Proc] = []  # the A/B web + relay pair while it runs
        self.port: int | None = None

    def setup(self) -> None:
        inline = self.results["settings"].get("OUTBOX_PUBLISH_INLINE")
        if not isinstance(inline, bool):
            raise RuntimeError(f"could not read OUTBOX_PUBLISH_INLINE from the settings: {self.results['settings']}")
        self.default = LABELS[inline]
        self.env = {"OUTBOX_PUBLISH_INLINE": str(not inline)}
        self.label = LABELS[not inline]
        self.slug = self.label.replace(" ", "-")  # load-run labels: api-orders-relay-only-c16
        self.key = self.label.replace(" ", "_")  # phase and figure keys: pipeline_e2e_relay_only
        self.results["publish"] = {
            "default": self.default,
            "default_inline": inline,
            "ab": self.label,
            "ab_key": self.key,
        }

    def of(self, port: int) -> str:
        """The publish setting of the web server on `port`."""
        return self.label if port == self.port else self.default

    def start(self) -> int:
        """The A/B web server with the other publish setting, and a relay with the same setting."""
        web, port = self.servers.start_web(self.env, name=f"web-{self.slug}", kind="web_ab")
        relay = self.servers.start_relay(self.env, name=f"relay-{self.slug}", kind="relay_ab")
        self.running = [web, relay]
        self.servers.keep(*self.running)
        self.port = port
        return port

    def stop(self) -> None:
        self.servers.stop(self.running)
        self.running, self.port = [], None
