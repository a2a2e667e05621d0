"""Logging set-up: structlog to stderr, console for people or JSON for machines, secrets redacted.

Every configured secret (and every token the client obtains) is registered here; a processor
replaces it wherever it shows up in an event, whatever the key.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import orjson
import structlog

_SECRET_KEYS = re.compile(r"(secret|token|password|authorization|api[-_]?key)", re.IGNORECASE)
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
_known: set[str] = set()
REDACTED = "[redacted]"


# What a name must never put on a terminal as is: everything Python does not call printable,
# but the ASCII space. That is C0 controls (ESC, CR, LF, BEL, ...), DEL and C1 controls, format
# characters (the bidi overrides that reorder a line), line and paragraph separators, other
# spaces, unassigned and private-use code points, and lone surrogates (the undecodable bytes of a
# file name, kept by Python's surrogateescape).
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(char: str) -> str:
    if char == " " or char.isprintable():
        return char
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name: show the byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` safe for one human-readable line: every control character as a visible escape.

    ESC becomes `\\x1b`, LF `\\n`, an undecodable file-name byte `\\xff`, a bidi override
    `\\u202e`: a name from a document, a tenant or a directory can neither recolour a terminal
    nor reorder or forge a line of its own.
    """
    if text.isprintable():
        return text
    return "".join(map(_escape_one, text))


_MIN_SECRET = 6  # shorter values would redact too much: they are ignored
_MIN_PREFIX = 4  # the shortest cut-off start of a secret still redacted at a cut
_ordered: list[str] = []  # every registered form, longest first
ELLIPSIS = "…"


def _base64_forms(raw: bytes) -> list[str]:
    # Unpadded: the padded text contains it, so one substring test covers both.
    return [
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    ]


def secret_forms(value: str) -> set[str]:
    """Every way a server may echo `value`: raw, URL-encoded (quote and quote_plus, as a form
    body is), JSON-escaped (UTF-8 or \\u-escaped), HTML-escaped and base64."""
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        quote_plus(value, safe="/"),
        html.escape(value),
        *_base64_forms(value.encode("utf-8")),
    }
    # JSON-escaped, and escaped twice (an echo quoted inside a JSON error quoted again).
    for _ in range(2):
        forms |= {_json_escaped(f, ascii_only) for f in forms for ascii_only in (False, True)}
    return {f for f in forms if len(f) >= _MIN_SECRET}


def _json_escaped(text: str, ascii_only: bool) -> str:
    if ascii_only:
        return json.dumps(text)[1:-1]
    return orjson.dumps(text).decode("utf-8")[1:-1]


def _remember(forms: set[str]) -> None:
    global _ordered
    if forms - _known:
        _known.update(forms)
        _ordered = sorted(_known, key=len, reverse=True)


def register_secret(value: str) -> None:
    """Never let this value, in any encoding a server might echo, reach a log line or a message."""
    if value and len(value) >= _MIN_SECRET:
        _remember(secret_forms(value))


def register_credentials(client_id: str, secret: str) -> None:
    """The secret's forms plus the HTTP Basic forms of the pair: base64 of `id:secret`, raw and
    form-encoded (RFC 6749 §2.3.1)."""
    if not secret or len(secret) < _MIN_SECRET:
        return
    register_secret(secret)
    pairs = {f"{client_id}:{secret}", f"{quote_plus(client_id)}:{quote_plus(secret)}"}
    _remember({f for pair in pairs for f in _base64_forms(pair.encode("utf-8"))})


def _cut_tail(text: str) -> str:
    """`text` with a trailing start of a secret form (left by a cut) redacted."""
    if len(text) < _MIN_PREFIX:
        return text
    tail = text[-_MIN_PREFIX:]
    longest = 0
    for form in _ordered:
        if tail not in form:  # cheap filter: the cut start must end with these characters
            continue
        for k in range(min(len(form) - 1, len(text)), max(longest, _MIN_PREFIX - 1), -1):
            if text.endswith(form[:k]):
                longest = k
                break
    return text[:-longest] + REDACTED if longest else text


def redact_text(text: str) -> str:
    """`text` with every registered secret form replaced, and the start of one cut off at the
    end of the text or before an ellipsis (a message clipped by someone else) too."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _ordered:
        if ELLIPSIS in text:
            text = ELLIPSIS.join(_cut_tail(part) for part in text.split(ELLIPSIS))
        else:
            text = _cut_tail(text)
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


_RENDERED_ELSEWHERE = frozenset({"exception", "exc_info", "stack"})


def escape_processor(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """For the console: control characters in any string value shown as escapes (names from
    documents and tenants must not recolour the terminal or forge a log line)."""
    for key, value in event_dict.items():
        if isinstance(value, str) and key not in _RENDERED_ELSEWHERE:
            event_dict[key] = printable(value)
    return event_dict


class _Stderr:
    """Whatever sys.stderr is at the moment of writing (it may be swapped after set-up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_format = ["console"]  # the process's log format, as configure() set it


def say(text: str, *, level: str = "error") -> None:
    """A line migrator itself says on stderr (an error, a stop): as is for people; under
    `--log-format json` one JSON object like every log line, so stderr stays machine-readable.
    Redacted and, for people, with control characters escaped."""
    clean = redact_text(text)
    if _format[0] == "json":
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = orjson.dumps({"event": clean, "level": level, "timestamp": stamp}).decode()
    else:
        line = printable(clean)
    print(line, file=sys.stderr)


def configure(fmt: str = "console", level: str = "info", stream: TextIO | None = None) -> None:
    """Set structlog up once per process; `fmt` is "console" or "json"."""
    _format[0] = fmt
    out: Any = stream or _Stderr()
    renderer: Any
    # JSON escapes control characters itself; the console needs them made visible.
    escape: list[Any] = []
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        escape = [escape_processor]
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            *escape,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
