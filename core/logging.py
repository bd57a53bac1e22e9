"""Structured logs: one JSON object per line (or a readable line with LOG_FORMAT=console).

Context bound with `bind_order_context` (order_id, and task_id/stage in workers) rides on every line,
so `grep <order_id>` follows one order across web, workers, relay and archiver.
"""

import logging
from typing import Any

import structlog
from structlog.typing import Processor

_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_structlog() -> None:
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def build_formatter(fmt: str = "json") -> logging.Formatter:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
        foreign_pre_chain=_SHARED,
    )


def bind_order_context(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**{k: str(v) for k, v in values.items() if v is not None})


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()


def get_logger(name: str) -> Any:  # structlog's own annotation: a lazy proxy of a BoundLogger
    return structlog.stdlib.get_logger(name)
