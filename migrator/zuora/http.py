"""The HTTP edge: the run's one aiohttp session, capped body reads, request bodies, error texts.

Everything here is small and mostly pure; aiohttp exceptions are mapped to NetError in one place.
"""

from __future__ import annotations

import gzip
import html
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import orjson

from migrator.core.config import Settings
from migrator.core.logs import redact_text
from migrator.core.retry import NetError

GZIP_THRESHOLD = 4096  # bytes of JSON above which request bodies are gzipped
MAX_DETAIL = 300  # characters of a server's error text kept in a message

_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


class BodyTooLarge(Exception):
    """Raised when a response body exceeds the configured cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"response body larger than {limit} bytes")


def open_session(settings: Settings) -> aiohttp.ClientSession:
    """The run's one session; call inside the running loop and close it when the run ends.

    Timeouts are per socket operation only: `total`/`connect` would count time spent queued for a
    pooled connection, and queueing belongs to our own limiters.
    """
    connector = aiohttp.TCPConnector(limit=settings.max_connections, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=None,
        sock_connect=settings.connect_timeout,
        sock_read=settings.read_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),  # tenants sharing a host must never share cookies
        raise_for_status=False,  # it would lose the body and Retry-After
        auto_decompress=True,
        trust_env=False,
    )


async def close_session(session: aiohttp.ClientSession) -> None:
    """Close the run's session even while the run is being cancelled (a shielded scope)."""
    with anyio.CancelScope(shield=True):
        await session.close()


def request_headers(
    token: str,
    track_id: str,
    *,
    entity_ids: str | None,
    idempotency_key: str | None = None,
    json_body: bool = False,
    gzipped: bool = False,
    accept: str = "application/json",
) -> dict[str, str]:
    """The headers of one Workflow API request, for the client and doctor's probe alike."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": accept,
        "Accept-Encoding": "gzip",
        "Zuora-Track-Id": track_id,
    }
    if entity_ids:
        headers["Zuora-Entity-Ids"] = entity_ids
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if json_body:
        headers["Content-Type"] = "application/json"
        if gzipped:
            headers["Content-Encoding"] = "gzip"
    return headers


def gzip_body(raw: bytes) -> bytes:
    """Compress a request body (sent with Content-Encoding: gzip; aiohttp's compress= is deflate).

    The same body is often sent many times in a run (every tenant of a fleet imports the same
    documents), so the last few are remembered: `_GZIP_MEMO_BYTES` of bodies, none over
    `_GZIP_MEMO_MAX`. `mtime=0`: the output is a function of the body alone."""
    small = len(raw) <= _GZIP_MEMO_MAX
    if small:
        with _gzip_lock:
            done = _gzipped.get(raw)
            if done is not None:
                _gzipped.move_to_end(raw)
                return done
    done = gzip.compress(raw, compresslevel=5, mtime=0)
    if small:
        global _gzip_held
        with _gzip_lock:
            if raw not in _gzipped:
                _gzipped[raw] = done
                _gzip_held += len(raw) + len(done)
            while _gzip_held > _GZIP_MEMO_BYTES:
                body, out = _gzipped.popitem(last=False)
                _gzip_held -= len(body) + len(out)
    return done


_GZIP_MEMO_BYTES = 4 * 1024 * 1024  # bodies and their gzip held at once
_GZIP_MEMO_MAX = 256 * 1024  # a bigger body is compressed every time (in a worker thread)
_gzipped: OrderedDict[bytes, bytes] = OrderedDict()
_gzip_held = 0
_gzip_lock = threading.Lock()


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read the whole (decompressed) body, refusing more than `limit` bytes."""
    length = resp.content_length
    if (
        length is not None
        and "Content-Encoding" not in resp.headers  # case-insensitive
        and length > limit
    ):
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def classify(exc: BaseException) -> NetError | None:
    """Map an aiohttp/OS exception to a NetError, or None if it is not a network failure.

    Only failures known to happen before the request left (connect errors and connect timeouts)
    are "not sent"; every other timeout counts as a lost answer.
    """
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return NetError.TLS
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return NetError.CONNECT_TIMEOUT
    if isinstance(exc, aiohttp.ClientConnectorError):
        return NetError.CONNECT
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return NetError.DISCONNECTED
    if isinstance(exc, aiohttp.ClientPayloadError):
        return NetError.BROKEN_BODY
    if isinstance(exc, aiohttp.ClientResponseError):
        # Never from raise_for_status (we do not use it): the parser rejected the response.
        return NetError.NOT_HTTP
    if isinstance(exc, TimeoutError):
        return NetError.TIMEOUT
    if isinstance(exc, (aiohttp.ClientOSError, ConnectionError)):
        return NetError.RESET
    if isinstance(exc, aiohttp.ClientError):
        return NetError.DISCONNECTED
    return None


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body; raises ValueError (orjson.JSONDecodeError) when malformed."""
    return orjson.loads(raw)


def error_detail(raw: bytes, scrub: Callable[[str], str] = redact_text) -> str:
    """A one-line reason from an error body: errors → Errors → reasons → message/error → text.

    `scrub` redacts secrets; it runs before the text is cut to MAX_DETAIL characters.
    """
    if not raw.strip():
        return ""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _text_detail(raw, scrub)
    found = _json_detail(body)
    if found:
        return _one_line(found, scrub)
    if not body:  # {} / [] / null / "" say nothing worth showing
        return ""
    return _one_line(orjson.dumps(body).decode("utf-8", "replace"), scrub)


def _json_detail(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("errors", "Errors", "reasons"):
        items = body.get(key)
        if isinstance(items, list) and items:
            texts = [t for t in (_item_text(item) for item in items) if t]
            if texts:
                return "; ".join(texts)
    for key in ("message", "error_description", "error", "title", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            code = body.get("code")
            # The SDK's CommonErrorResponse `{code, message}` (§1.12): Zuora's 8-digit code too.
            if key == "message" and type(code) is int:
                return f"{value} (code {code})"
            return value
    return ""


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("title", "message", "detail", "error"):
            value = item.get(key)
            if isinstance(value, str) and value.strip():
                field = item.get("fieldName")
                return f"{field}: {value}" if isinstance(field, str) and field else value
        code = item.get("code")
        if code is not None:
            return str(code)
    return ""


def _text_detail(raw: bytes, scrub: Callable[[str], str]) -> str:
    head = raw[:65536]
    lowered = head.lstrip()[:512].lower()
    if (
        lowered.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))
        or b"<html" in lowered
    ):
        title = _TITLE.search(head)
        if title:
            text = html.unescape(_TAG.sub(" ", title.group(1).decode("utf-8", "replace")))
            if text.strip():
                return _one_line("HTML page: " + text, scrub)
        return "HTML page"
    return _one_line(head.decode("utf-8", "replace"), scrub)


def _one_line(text: str, scrub: Callable[[str], str]) -> str:
    clean = _SPACE.sub(" ", "".join(c if c.isprintable() else " " for c in text)).strip()
    # Redact before cutting: a cut through an echoed secret would show its first characters.
    clean = scrub(clean)
    if len(clean) > MAX_DETAIL:
        clean = clean[: MAX_DETAIL - 1] + "…"
    return clean
