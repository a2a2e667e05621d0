"""The content-hash cache: what each version a tenant holds contains (its canonical hash), so a
re-run compares with the target without exporting a version it has seen; beside it, what each
tenant's describe and custom object answers listed (the reference check). SQLite, shared by processes.

A cache, never a record: an entry says only "version V of definition D, as it stood at updatedAt
U, has content hash H". Deleting the file loses nothing but exports; a damaged or foreign file is
ignored with one warning line.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
import structlog

from migrator.core.config import Settings, TenantConfig
from migrator.store.profiles import cache_root, tenant_key

log = structlog.get_logger("migrator.cache")

CACHE_FILE = "content-hashes.sqlite"
# The `schemas` row of a tenant's custom object definitions (object names never start with "@").
CUSTOM_OBJECTS = "@custom-objects"
CACHE_FORMAT = "migrator-content-hashes/1"
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (
    tenant TEXT NOT NULL,
    definition_id INTEGER NOT NULL,
    version_id INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (tenant, definition_id, version_id, updated_at)
);
CREATE TABLE IF NOT EXISTS schemas (
    tenant TEXT NOT NULL,
    object TEXT NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (tenant, object)
);
"""
# The `hashes` columns this code writes, in order: a file laid out otherwise is not used.
_HASH_COLUMNS = ["tenant", "definition_id", "version_id", "updated_at", "content_hash"]


class ContentCache:
    """The shared cache file, or nothing at all once it proved unusable (one warning, then quiet).

    Every call is a short statement under the busy timeout; failures turn the cache off for the
    rest of the run instead of failing the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used from the loop and worker threads
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            try:
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                if tables and "meta" not in tables:
                    raise sqlite3.DatabaseError(f"not a {CACHE_FORMAT} file")  # left untouched
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                with db:
                    db.executescript(_SCHEMA)
                    db.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)",
                        (CACHE_FORMAT,),
                    )
                row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
                if row is None or row[0] != CACHE_FORMAT:
                    raise sqlite3.DatabaseError(f"not a {CACHE_FORMAT} file")
                columns = [r[1] for r in db.execute("PRAGMA table_info(hashes)")]
                if columns != _HASH_COLUMNS:
                    raise sqlite3.DatabaseError("unexpected table layout")
            except BaseException:
                db.close()
                raise
            self._db = db
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)

    @classmethod
    def open(cls, settings: Settings) -> ContentCache:
        return cls(cache_root(settings) / CACHE_FILE)

    @property
    def usable(self) -> bool:
        return self._db is not None

    def _disable(self, exc: BaseException) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None
        log.warning(
            "ignoring the content-hash cache",
            file=str(self.path),
            reason=str(exc) or type(exc).__name__,
        )

    def _row(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first row `sql` finds, or None (also when the cache is off or fails now)."""
        with self._lock:
            if self._db is None:
                return None
            try:
                return self._db.execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                self._disable(exc)
                return None

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                with self._db:
                    self._db.execute(sql, params)
            except sqlite3.Error as exc:
                self._disable(exc)

    def get(self, tenant: str, definition_id: int, version_id: int, updated_at: str) -> str | None:
        """The content hash recorded for this version as it stood at `updated_at`, or None."""
        row = self._row(
            "SELECT content_hash FROM hashes WHERE tenant = ? AND definition_id = ? "
            "AND version_id = ? AND updated_at = ?",
            (tenant, definition_id, version_id, updated_at),
        )
        return row[0] if row is not None and _is_hash(row[0]) else None

    def put(
        self, tenant: str, definition_id: int, version_id: int, updated_at: str, content_hash: str
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)",
            (tenant, definition_id, version_id, updated_at, content_hash),
        )

    def get_schema(self, tenant: str, obj: str) -> Any:
        """What the tenant last said of `obj` (describe's field names, or the custom object
        definitions under `CUSTOM_OBJECTS`), as JSON data; None when not cached."""
        row = self._row("SELECT answer FROM schemas WHERE tenant = ? AND object = ?", (tenant, obj))
        if row is None:
            return None
        try:
            return orjson.loads(row[0])
        except orjson.JSONDecodeError:
            return None

    def put_schema(self, tenant: str, obj: str, answer: Any) -> None:
        self._write(
            "INSERT OR REPLACE INTO schemas VALUES (?, ?, ?)",
            (tenant, obj, orjson.dumps(answer).decode()),
        )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def for_tenant(self, tenant: TenantConfig) -> TenantCache:
        return TenantCache(self, tenant_key(tenant))


class TenantCache:
    """The cache as one tenant sees it (keyed by `profiles.tenant_key`: URL and client id)."""

    def __init__(self, cache: ContentCache, key: str) -> None:
        self.cache = cache
        self.key = key

    def get(self, definition_id: int, version_id: int, updated_at: str) -> str | None:
        return self.cache.get(self.key, definition_id, version_id, updated_at)

    def put(self, definition_id: int, version_id: int, updated_at: str, content_hash: str) -> None:
        self.cache.put(self.key, definition_id, version_id, updated_at, content_hash)

    def schema(self, obj: str) -> Any:
        return self.cache.get_schema(self.key, obj)

    def put_schema(self, obj: str, answer: Any) -> None:
        self.cache.put_schema(self.key, obj, answer)


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def open_cache(settings: Settings, *, enabled: bool = True) -> ContentCache | None:
    """The run's cache, or None with `--no-cache` (nothing read, nothing written)."""
    if not enabled:
        return None
    return ContentCache.open(settings)
