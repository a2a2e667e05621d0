"""Discovering and reading documents: files, directories, .json.gz and checksummed snapshots."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.core.errors import InputError
from migrator.store.sources import (
    MANIFEST_NAME,
    SNAPSHOT_FORMAT,
    SourceItem,
    discover,
    find_snapshots,
    read_document,
    verify_snapshot,
)
from tests.builders import small_export as doc


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def named(name: str) -> bytes:
    d = doc()
    d["workflow"]["name"] = name
    return orjson.dumps(d)


def rel(items: list[SourceItem], root: Path) -> list[str]:
    return [
        os.path.relpath(i.path, root)
        if i.member is None
        else f"{os.path.relpath(i.path, root)}:{i.member}"
        for i in items
    ]


def test_discover_walks_sorted_and_skips_noise(tmp_path: Path) -> None:
    """Directories are walked recursively, sorted per directory, hidden and non-JSON files skipped."""
    write(tmp_path / "b.json", named("b"))
    write(tmp_path / "a" / "z.json.gz", gzip.compress(named("z")))
    write(tmp_path / "a" / "y.JSON", named("y"))
    write(tmp_path / "a" / "notes.txt", b"hi")
    write(tmp_path / ".hidden.json", named("h"))
    write(tmp_path / ".git" / "c.json", named("c"))
    write(tmp_path / "c.json", named("c"))
    found = discover([str(tmp_path)])
    assert iter(found) is found  # a lazy iterator, not a list
    assert rel(list(found), tmp_path) == ["a/y.JSON", "a/z.json.gz", "b.json", "c.json"]


def test_explicit_files_and_missing_paths(tmp_path: Path) -> None:
    """A named file is taken whatever its suffix; a missing path becomes a failing item."""
    odd = write(tmp_path / "export.txt", named("odd"))
    items = list(discover([str(odd), str(tmp_path / "nope.json")]))
    assert [i.path for i in items] == [str(odd), str(tmp_path / "nope.json")]
    assert read_document(items[0]).name == "odd"
    with pytest.raises(InputError) as info:
        read_document(items[1])
    assert str(info.value) == f"{tmp_path / 'nope.json'}: $: no such file or directory"


def test_symlink_loop_terminates(tmp_path: Path) -> None:
    """A directory symlink pointing back up is visited once."""
    write(tmp_path / "d" / "x.json", named("x"))
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    assert rel(list(discover([str(tmp_path)])), tmp_path) == ["d/x.json"]


def test_gzip_documents(tmp_path: Path) -> None:
    """A .json.gz file (even multi-member) is decompressed and parsed."""
    data = named("gz")
    one = write(tmp_path / "one.json.gz", gzip.compress(data))
    two = write(tmp_path / "two.json.gz", gzip.compress(data[:10]) + gzip.compress(data[10:]))
    assert read_document(SourceItem(str(one))).name == "gz"
    assert read_document(SourceItem(str(two))).name == "gz"


def gz_error(tmp_path: Path, data: bytes, max_bytes: int = 1 << 20) -> str:
    path = write(tmp_path / "bad.json.gz", data)
    with pytest.raises(InputError) as info:
        read_document(SourceItem(str(path)), max_bytes=max_bytes)
    return str(info.value).removeprefix(f"{path}: $: ")


def test_truncated_gzip(tmp_path: Path) -> None:
    """A gzip file cut short is reported as truncated."""
    assert (
        gz_error(tmp_path, gzip.compress(named("t"))[:-12])
        == "truncated gzip data (the file ends mid-stream)"
    )


def test_corrupt_gzip(tmp_path: Path) -> None:
    """Damaged compressed bytes are reported as corrupt gzip data."""
    blob = bytearray(gzip.compress(named("t") * 3))
    blob[20:30] = b"\xff" * 10
    assert gz_error(tmp_path, bytes(blob)).startswith("corrupt gzip data: ")


def test_not_gzip(tmp_path: Path) -> None:
    """A .gz name on plain bytes is reported."""
    assert gz_error(tmp_path, named("t")) == "not gzip data (the name ends in .gz)"


def test_gzip_bomb(tmp_path: Path) -> None:
    """Decompression stops at the size limit instead of filling memory."""
    bomb = gzip.compress(b"{" + b" " * (50 << 20) + b"}")
    assert len(bomb) < 200_000
    assert gz_error(tmp_path, bomb, max_bytes=1 << 20) == (
        "decompresses to more than the 1048576-byte limit (max_document_bytes)"
    )


def test_trailing_garbage_after_gzip(tmp_path: Path) -> None:
    """Bytes after the gzip stream that are not another member are refused."""
    assert (
        gz_error(tmp_path, gzip.compress(named("t")) + b"junk")
        == "trailing garbage after gzip data"
    )


def test_plain_file_size_limit(tmp_path: Path) -> None:
    """A plain file over the limit is refused, naming the limit."""
    path = write(tmp_path / "big.json", named("x" * 2000))
    with pytest.raises(InputError) as info:
        read_document(SourceItem(str(path)), max_bytes=1024)
    assert str(info.value) == f"{path}: $: file is over the 1024-byte limit (max_document_bytes)"


def test_directory_given_as_item(tmp_path: Path) -> None:
    """Reading a directory as a document is a one-line error."""
    with pytest.raises(InputError, match="is a directory"):
        read_document(SourceItem(str(tmp_path)))


# ---------------------------------------------------------------- snapshots


def make_snapshot(
    root: Path, files: dict[str, bytes], extra: list[dict[str, Any]] | None = None
) -> Path:
    entries = []
    for i, (member, data) in enumerate(files.items()):
        write(root / member, data)
        entries.append(
            {
                "path": member,
                "definition_id": 100 + i,
                "version_id": 200 + i,
                "name": member,
                "version": "0.0.1",
                "active": True,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {
        "format": SNAPSHOT_FORMAT,
        "tenant": "prod",
        "created_at": "2026-11-28T10:00:00Z",
        "tool_version": "0.1.0",
        "files": entries + (extra or []),
    }
    write(root / MANIFEST_NAME, orjson.dumps(manifest))
    return root


def test_snapshot_items_carry_ids_and_checksums(tmp_path: Path) -> None:
    """A directory with a manifest yields its listed files with definition id and sha256."""
    snap = make_snapshot(
        tmp_path / "snap", {"a.json": named("a"), "sub/b.json.gz": gzip.compress(named("b"))}
    )
    items = list(discover([str(tmp_path)]))
    assert [(i.member, i.definition_id) for i in items] == [("a.json", 100), ("sub/b.json.gz", 101)]
    assert all(i.sha256 and len(i.sha256) == 64 for i in items)
    docs = [read_document(i) for i in items]
    assert [(d.name, d.definition_id, d.source) for d in docs] == [
        ("a", 100, f"{snap}:a.json"),
        ("b", 101, f"{snap}:sub/b.json.gz"),
    ]
    assert verify_snapshot(str(snap)) == []


def test_snapshot_checksum_rechecked_on_read(tmp_path: Path) -> None:
    """A member changed after verification is refused when read."""
    snap = make_snapshot(tmp_path, {"a.json": named("a")})
    (snap / "a.json").write_bytes(named("tampered"))
    item = next(discover([str(snap)]))
    with pytest.raises(
        InputError,
        match=r"^.*a\.json: \$: checksum mismatch \(manifest [0-9a-f]{12}…, file [0-9a-f]{12}…\)$",
    ):
        read_document(item)


def test_verify_snapshot_lists_every_problem(tmp_path: Path) -> None:
    """Missing, altered, unlisted, escaping and duplicated files are all reported at once."""
    outside = write(tmp_path / "outside.json", named("o"))
    snap = make_snapshot(
        tmp_path / "snap",
        {"ok.json": named("ok"), "gone.json": named("g"), "changed.json": named("c")},
        extra=[
            {"path": "../outside.json", "sha256": "0" * 64},
            {"path": "/etc/passwd", "sha256": "0" * 64},
            {"path": "ok.json", "sha256": hashlib.sha256(named("ok")).hexdigest()},
            {"path": "link.json", "sha256": "0" * 64},
        ],
    )
    (snap / "gone.json").unlink()
    (snap / "changed.json").write_bytes(named("c2"))
    write(snap / "extra" / "new.json", named("n"))
    os.symlink(outside, snap / "link.json")
    problems = verify_snapshot(str(snap))
    s = str(snap)
    assert problems[0] == f"{s}:gone.json: missing (listed in the manifest)"
    assert problems[1].startswith(f"{s}:changed.json: checksum mismatch (manifest ")
    assert (
        problems[2]
        == f"{s}:../outside.json: $: path has empty, '.' or '..' parts; it would escape the snapshot directory"
    )
    assert (
        problems[3]
        == f"{s}:/etc/passwd: $: path is absolute; it would escape the snapshot directory"
    )
    assert problems[4] == f"{s}:ok.json: listed twice in the manifest"
    assert problems[5] == f"{s}:link.json: $: path leads outside the snapshot directory (symlink)"
    assert problems[6] == f"{s}:extra/new.json: not listed in the manifest"
    assert len(problems) == 7


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        (b"{", "$: not valid JSON at line 1 column 2: unexpected end of data"),
        (b"[]", "$: must be a JSON object"),
        (
            b'{"format": "other/2", "files": []}',
            "$.format: unknown snapshot format 'other/2' (expected 'migrator-snapshot/1')",
        ),
        (b'{"format": "migrator-snapshot/1"}', "$.files: must be an array"),
        (
            b'{"format": "migrator-snapshot/1", "files": [{"path": "a.json", "sha256": "xyz"}]}',
            "$.files[0].sha256: must be 64 lower-case hex digits",
        ),
        (
            b'{"format": "migrator-snapshot/1", "files": [{"path": "", "sha256": "xyz"}]}',
            "$.files[0].path: must be a non-empty string",
        ),
        (
            b'{"format": "migrator-snapshot/1", "files": [{"path": "a.json", "sha256": "'
            + b"a" * 64
            + b'", "definition_id": "1"}]}',
            "$.files[0].definition_id: must be an integer",
        ),
    ],
)
def test_bad_manifest(tmp_path: Path, manifest: bytes, problem: str) -> None:
    """An unusable manifest is one problem for verify and an InputError for discovery."""
    write(tmp_path / MANIFEST_NAME, manifest)
    expected = f"{tmp_path / MANIFEST_NAME}: {problem}"
    assert verify_snapshot(str(tmp_path)) == [expected]
    with pytest.raises(InputError) as info:
        list(discover([str(tmp_path)]))
    assert str(info.value) == expected


def test_missing_manifest(tmp_path: Path) -> None:
    """verify_snapshot on a plain directory says the manifest is missing."""
    assert verify_snapshot(str(tmp_path)) == [
        f"{tmp_path / MANIFEST_NAME}: $: snapshot manifest is missing"
    ]


def test_find_snapshots(tmp_path: Path) -> None:
    """Snapshot directories are found anywhere under the given paths, without reading documents."""
    make_snapshot(tmp_path / "nightly" / "2026-11-27", {"a.json": named("a")})
    make_snapshot(tmp_path / "nightly" / "2026-11-28", {"a.json": named("a")})
    write(tmp_path / "loose" / "b.json", named("b"))
    assert find_snapshots([str(tmp_path), str(tmp_path / "loose" / "b.json")]) == [
        str(tmp_path / "nightly" / "2026-11-27"),
        str(tmp_path / "nightly" / "2026-11-28"),
    ]


def test_find_snapshots_goes_where_the_walk_of_documents_goes(tmp_path: Path) -> None:
    """A snapshot behind a linked directory is read by the walk, so it is found (and checked)
    too; a link back up the tree ends, hidden directories are left out as the walk does."""
    make_snapshot(tmp_path / "elsewhere" / "snap", {"a.json": named("a")})
    make_snapshot(tmp_path / "src" / ".hidden" / "snap", {"a.json": named("a")})
    (tmp_path / "src").mkdir(exist_ok=True)
    os.symlink(tmp_path / "elsewhere", tmp_path / "src" / "linked")
    os.symlink(tmp_path / "src", tmp_path / "src" / "loop")
    walked = {item.path for item in discover([str(tmp_path / "src")])}
    found = find_snapshots([str(tmp_path / "src")])
    assert found == [str(tmp_path / "src" / "linked" / "snap")]
    assert walked == set(found)  # every document came from that snapshot


@pytest.mark.slow
def test_find_snapshots_does_not_hold_a_directorys_file_names(tmp_path: Path) -> None:
    """Looking for snapshots lists directories only: 20,000 documents beside them cost nothing."""
    from tests.helpers import traced_peak

    for i in range(20_000):
        (tmp_path / f"exported-workflow-{i:06d}.json").write_bytes(b"")
    make_snapshot(tmp_path / "snap", {"a.json": named("a")})
    found, peak = traced_peak(lambda: find_snapshots([str(tmp_path)]))
    assert found == [str(tmp_path / "snap")]
    assert peak < 256 * 1024, peak  # os.walk held ~2 MB of names here


@settings(max_examples=40, deadline=None)
@given(
    names=st.sets(
        st.text(
            st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
            min_size=1,
            max_size=12,
        ).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200),
        max_size=40,
    ),
    run=st.integers(1, 8),
)
def test_sorted_names_are_the_sorted_listing_in_runs_of_any_size(
    tmp_path_factory: pytest.TempPathFactory, names: set[str], run: int
) -> None:
    """Read a run at a time and merged, a directory's names come in exactly sorted() order."""
    from migrator.store.sources import sorted_names

    directory = tmp_path_factory.mktemp("names")
    for name in names:
        (directory / name).write_bytes(b"")
    assert list(sorted_names(str(directory), run)) == sorted(os.listdir(directory))
