"""Loguru as the one log sink: JSON or text lines, stdlib/uvicorn/rq records routed through it."""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import TYPE_CHECKING

from loguru import logger

from service.settings import Settings

if TYPE_CHECKING:
    from loguru import Record

_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "rq", "rq.worker", "neo4j", "litestar")


class InterceptHandler(logging.Handler):
    """Forward stdlib logging records to loguru, keeping the caller's location."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = logging.currentframe()
        depth = 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        name = record.name

        def keep_logger_name(entry: Record) -> None:
            entry["name"] = name

        logger.patch(keep_logger_name).opt(depth=depth, exception=record.exc_info).log(
            level, record.getMessage()
        )


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """Control and other invisible characters as escapes (`\\n`, `\\x1b`, `\\u202e`), so that
    text a client chose (a request path, a header) can neither forge a log line nor drive
    the terminal. A backslash is doubled only when something was escaped, so plain
    messages (e.g. Windows paths) read as they were written."""
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text.replace("\\", "\\\\"):
        if char.isprintable():
            out.append(char)
        elif char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        else:
            out.append(_numeric_escape(ord(char)))
    return "".join(out)


def _numeric_escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape_message(record: Record) -> None:
    record["message"] = escape_controls(record["message"])


def _as_is(record: Record) -> None:
    """JSON lines need no escaping of their own (a patcher stays installed until replaced)."""


def configure_logging(settings: Settings) -> None:
    """Install the sinks; safe to call more than once (the last call wins).

    One line per event: text lines escape control characters in the message (JSON lines
    escape them by being JSON)."""
    logger.remove()
    text = settings.log_format == "text"
    logger.configure(extra={"request_id": "-", "trace_id": "-"}, patcher=_escape_message if text else _as_is)
    if not text:
        logger.add(sys.stderr, level=settings.log_level, serialize=True, backtrace=False, diagnose=False)
    else:
        logger.add(
            sys.stderr,
            level=settings.log_level,
            backtrace=False,
            diagnose=False,
            format=(
                "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
                "[{extra[request_id]}] <cyan>{name}</cyan> {message}"
            ),
        )
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in _ROUTED_LOGGERS:
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers = [InterceptHandler()]
        stdlib_logger.propagate = False
    # Our middleware writes one access line per request; uvicorn's would be a duplicate.
    logging.getLogger("uvicorn.access").disabled = True
    # The neo4j driver logs every routing/retry attempt at INFO.
    logging.getLogger("neo4j").setLevel(logging.WARNING)
