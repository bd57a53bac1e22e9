"""DRF's JSON parser, bounded: any body it cannot turn into plain, sane JSON data is a 400 (ParseError, in
the API's error shape), never a 500.

DRF's JSONParser lets RecursionError escape (`[` x 5,000 was an HTML 500) and accepts what later breaks
the database or disagrees with other parsers. This one refuses, each as a 400:
- JSON nested deeper than REQUEST_JSON_MAX_DEPTH (Python's parser raises RecursionError near 1,000 levels,
  and anything that walks the data afterwards could too);
- malformed JSON, a body that is not valid in its charset (UTF-8 unless the request names another),
  NaN / Infinity (DRF's STRICT_JSON), numbers over Python's 4,300-digit limit;
- lone surrogates (`"\\ud800"`): PostgreSQL cannot store them (a UnicodeEncodeError, a 500, later);
- duplicate keys in an object: parsers disagree on which one wins (Python keeps the last, others the
  first), so a proxy or a log could read another order than the one accepted.
The body size is bounded before this runs (REQUEST_MAX_BODY_BYTES, core/limits.py).
"""

import json
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def nesting_too_deep(data: Any, max_depth: int) -> bool:
    """Walks the parsed data one level at a time (containers only), stopping at max_depth."""
    level = [data] if type(data) is dict or type(data) is list else []
    for _ in range(max_depth):
        below = []
        for node in level:
            for value in node.values() if type(node) is dict else node:
                if type(value) is dict or type(value) is list:
                    below.append(value)
        if not below:
            return False
        level = below
    return True


def _unique_keys(pairs: list) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        duplicate = ""
        for key, _ in pairs:
            if key in seen:
                duplicate = key
                break
            seen.add(key)
        raise ValueError(f"duplicate key {duplicate[:40]!r}")
    return data


def _has_lone_surrogate(data: Any) -> bool:
    if isinstance(data, str):
        return _LONE_SURROGATE.search(data) is not None
    if isinstance(data, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_lone_surrogate(v) for v in data)
    return False


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        raw = stream.read()
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError, TypeError):  # LookupError/TypeError: a charset that is no text codec
            raise ParseError(f"JSON parse error - body is not valid {encoding}") from None
        try:
            data = json.loads(
                text, parse_constant=strict_constant if self.strict else None, object_pairs_hook=_unique_keys
            )
        except RecursionError:  # past ~900 levels, before any depth check could see the data
            raise ParseError(
                f"JSON parse error - nested deeper than {settings.REQUEST_JSON_MAX_DEPTH} levels"
            ) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
        # Cheap first: no more levels than opening brackets (two C-speed counts; a normal order stops here).
        max_depth = settings.REQUEST_JSON_MAX_DEPTH
        if text.count("[") + text.count("{") > max_depth and nesting_too_deep(data, max_depth):
            raise ParseError(f"JSON parse error - nested deeper than {max_depth} levels")
        # Escaped surrogates are the only way in (a raw one fails the decode above): look only if escaped.
        if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(data):
            raise ParseError("JSON parse error - lone surrogate in a string")
        return data
