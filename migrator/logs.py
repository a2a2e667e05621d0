"""Logging set-up: structlog to stderr, console for people or JSON for machines, secrets redacted.

Every configured secret (and every token the client obtains) is registered here; a processor
replaces it wherever it shows up in an event, whatever the key.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"(secret|token|password|authorization|api[-_]?key)", re.IGNORECASE)
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
_known: set[str] = set()
REDACTED = "[redacted]"


# What a name must never put on a terminal as is: C0 controls (ESC, CR, LF, BEL, ...), DEL, C1
# controls, the Unicode line/paragraph separators and the bidi overrides that reorder a line, and
# lone surrogates (the undecodable bytes of a file name, kept by Python's surrogateescape).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name: show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` safe for one human-readable line: every control character as a visible escape.

    ESC becomes `\\x1b`, LF `\\n`, an undecodable file-name byte `\\xff`: a name from a document,
    a tenant or a directory can neither recolour a terminal nor forge a line of its own.
    """
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(_escape_one, text)


def register_secret(value: str) -> None:
    """Never let this value reach a log line (short values would redact too much: ignore them)."""
    if value and len(value) >= 6:
        _known.add(value)


def redact_text(text: str) -> str:
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub("Bearer " + REDACTED, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if _SECRET_KEYS.search(str(k)) else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(str(value))
    return value


def redact_processor(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _SECRET_KEYS.search(key) and key not in ("event",):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


class _Stderr:
    """Whatever sys.stderr is at the moment of writing (it may be swapped after set-up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(fmt: str = "console", level: str = "info", stream: TextIO | None = None) -> None:
    """Set structlog up once per process; `fmt` is "console" or "json"."""
    out: Any = stream or _Stderr()
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
