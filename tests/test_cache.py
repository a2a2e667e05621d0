"""The content-hash cache on disk (store/cache.py): answers only for a version as it stood,
ignores a damaged or foreign file with one warning, and is shared safely by processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from structlog.testing import capture_logs

from migrator.store.cache import CACHE_FILE, ContentCache

H1 = "a" * 64
H2 = "b" * 64


def test_an_entry_answers_only_for_the_same_version_as_it_stood(tmp_path: Path) -> None:
    """A hash is found for the tenant, definition, version and updatedAt it was stored under,
    never for another tenant or a later updatedAt."""
    cache = ContentCache(tmp_path / CACHE_FILE)
    cache.put("t1", 10, 11, "2026-01-01T00:00:00.000Z", H1)
    assert cache.get("t1", 10, 11, "2026-01-01T00:00:00.000Z") == H1
    assert cache.get("t1", 10, 11, "2026-01-01T00:00:01.000Z") is None
    assert cache.get("t2", 10, 11, "2026-01-01T00:00:00.000Z") is None
    assert cache.get("t1", 10, 12, "2026-01-01T00:00:00.000Z") is None
    cache.close()
    reopened = ContentCache(tmp_path / CACHE_FILE)
    assert reopened.get("t1", 10, 11, "2026-01-01T00:00:00.000Z") == H1


def test_a_damaged_file_is_ignored_with_one_warning(tmp_path: Path) -> None:
    """A cache file that is not a database is ignored with one warning line; gets miss, puts do
    nothing, and nothing raises."""
    path = tmp_path / CACHE_FILE
    path.write_bytes(b"\x00garbage, not sqlite\xff" * 100)
    with capture_logs() as logs:
        cache = ContentCache(path)
        assert not cache.usable
        cache.put("t1", 1, 2, "x", H1)
        assert cache.get("t1", 1, 2, "x") is None
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["event"] == "ignoring the content-hash cache"
    assert warnings[0]["file"] == str(path)


def test_a_foreign_database_is_ignored(tmp_path: Path) -> None:
    """A SQLite file of some other program (no format mark, other tables) is ignored, not used
    and not changed."""
    path = tmp_path / CACHE_FILE
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE hashes (x TEXT)")
    db.commit()
    db.close()
    with capture_logs() as logs:
        cache = ContentCache(path)
    assert not cache.usable
    assert sum(e["log_level"] == "warning" for e in logs) == 1
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["hashes"]


def test_a_malformed_hash_is_not_trusted(tmp_path: Path) -> None:
    """A row whose hash is not 64 lower-case hex digits (an edited file) answers nothing."""
    cache = ContentCache(tmp_path / CACHE_FILE)
    cache.put("t1", 1, 2, "x", "not-a-hash")
    assert cache.get("t1", 1, 2, "x") is None


def test_a_cache_folder_that_cannot_be_made_is_ignored(tmp_path: Path) -> None:
    """A cache path under a regular file (no folder can be made there) is one warning, no error."""
    (tmp_path / "file").write_text("")
    with capture_logs() as logs:
        cache = ContentCache(tmp_path / "file" / CACHE_FILE)
    assert not cache.usable and len(logs) == 1


WRITER = """
import sys
from pathlib import Path
from migrator.store.cache import ContentCache

path, tenant = Path(sys.argv[1]), sys.argv[2]
cache = ContentCache(path)
assert cache.usable
for i in range(300):
    cache.put(tenant, i, i + 1, "t", format(i, "064x"))
    assert cache.get(tenant, i, i + 1, "t") == format(i, "064x")
print("ok")
"""


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    """Two processes writing and reading the same cache at once both finish, and every entry of
    each is there afterwards (WAL and a busy timeout, no lost write, no error)."""
    path = tmp_path / CACHE_FILE
    ContentCache(path).close()  # made once, as the first run would
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("t1", "t2")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    cache = ContentCache(path)
    for tenant in ("t1", "t2"):
        assert all(cache.get(tenant, i, i + 1, "t") == format(i, "064x") for i in range(300))
