"""A file touched by long-running loops (relay, archiver) for exec liveness probes."""

import os
import time
from pathlib import Path


def beat(path: str | None) -> None:
    if path:
        Path(path).touch()


def age_seconds(path: str) -> float:
    return time.time() - os.stat(path).st_mtime
