"""Hostile source folders (issue 14, items 6 and 8): names that are not UTF-8 and files that are
not regular files are one failed item each, never a crash or a hang."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import orjson
import pytest

from migrator.core.errors import InputError
from migrator.fake import FakeConfig
from migrator.store.sources import discover, file_sha256, read_document, verify_snapshot
from tests.builders import small_export
from tests.helpers import assert_no_traceback, run_migrator, running_fake, write_config_file

BAD_NAME = b"caf\xe9\xff.json"  # Latin-1 bytes: not UTF-8


def read_all(folder: Path) -> tuple[list[str], list[InputError]]:
    """The names of the documents read from `folder` and the errors of the others."""
    names: list[str] = []
    errors: list[InputError] = []
    for item in discover([str(folder)]):
        try:
            names.append(read_document(item).name)
        except InputError as exc:
            errors.append(exc)
    return names, errors


def test_a_file_name_that_is_not_utf8_is_one_failed_item_shown_with_escapes(tmp_path: Path) -> None:
    """A document whose file name is not UTF-8 fails alone, named with \\x escapes; its neighbour is read."""
    (tmp_path / "good.json").write_bytes(orjson.dumps(small_export("Good")))
    with open(os.path.join(os.fsencode(tmp_path), BAD_NAME), "wb") as f:
        f.write(orjson.dumps(small_export("Bad name")))
    names, errors = read_all(tmp_path)
    assert names == ["Good"]
    assert len(errors) == 1
    error = errors[0]
    assert error.source == f"{tmp_path}/caf\\xe9\\xff.json"
    assert "not valid UTF-8" in error.message
    str(error).encode("utf-8")  # writable to a journal, a report or a terminal
    orjson.dumps({"source": error.source, "error": str(error)})


def test_a_directory_whose_name_is_not_utf8_fails_its_files_only(tmp_path: Path) -> None:
    """Documents inside a directory whose name is not UTF-8 each fail under an escaped name."""
    bad_dir = os.path.join(os.fsencode(tmp_path), b"dir\x1b\xfe")
    os.mkdir(bad_dir)
    with open(os.path.join(bad_dir, b"inner.json"), "wb") as f:
        f.write(orjson.dumps(small_export("Inner")))
    (tmp_path / "ok.json").write_bytes(orjson.dumps(small_export("Ok")))
    names, errors = read_all(tmp_path)
    assert names == ["Ok"]
    assert [e.source for e in errors] == [f"{tmp_path}/dir\\x1b\\xfe/inner.json"]


def test_a_fifo_named_json_is_one_failed_item_and_does_not_block(tmp_path: Path) -> None:
    """A FIFO named `*.json` in a source folder is refused at once as not a regular file, naming its path."""
    (tmp_path / "a.json").write_bytes(orjson.dumps(small_export("A")))
    os.mkfifo(tmp_path / "pipe.json")
    names, errors = read_all(tmp_path)
    assert names == ["A"]
    assert [e.source for e in errors] == [str(tmp_path / "pipe.json")]
    assert "FIFO" in errors[0].message and "regular file" in errors[0].message


def test_a_socket_named_json_is_one_failed_item(tmp_path: Path) -> None:
    """A Unix socket named `*.json` is one failed item saying it is a socket."""
    path = tmp_path / "s.json"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        _, errors = read_all(tmp_path)
    assert [e.source for e in errors] == [str(path)]
    assert "socket" in errors[0].message


def test_a_device_given_as_a_source_is_one_failed_item() -> None:
    """A character device given as a source path is refused as a device, without reading it."""
    errors = []
    for item in discover(["/dev/zero"]):
        with pytest.raises(InputError) as info:
            read_document(item)
        errors.append(info.value)
    assert len(errors) == 1 and "device" in errors[0].message


def test_a_fifo_in_a_snapshot_does_not_block_its_check(tmp_path: Path) -> None:
    """A snapshot whose listed member is a FIFO is reported damaged at once; file_sha256 refuses a FIFO."""
    os.mkfifo(tmp_path / "wf.json")
    manifest = {
        "format": "migrator-snapshot/1",
        "files": [{"path": "wf.json", "sha256": "0" * 64}],
    }
    (tmp_path / "manifest.json").write_bytes(orjson.dumps(manifest))
    problems = verify_snapshot(str(tmp_path))
    assert len(problems) == 1 and "FIFO" in problems[0], problems
    with pytest.raises(OSError):
        file_sha256(str(tmp_path / "wf.json"))


@pytest.mark.anyio
async def test_migrate_over_a_non_utf8_name_and_a_fifo_reports_both_and_imports_the_rest(
    tmp_path: Path,
) -> None:
    """`migrator migrate` over a folder with a non-UTF-8 name and a FIFO exits 1, names both, imports the good file, no traceback."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.json").write_bytes(orjson.dumps(small_export("Good one")))
    with open(os.path.join(os.fsencode(src), BAD_NAME), "wb") as f:
        f.write(orjson.dumps(small_export("Bad name")))
    os.mkfifo(src / "pipe.json")
    async with running_fake(FakeConfig.demo(1)) as env:
        cfg = tmp_path / "migrator.toml"
        variables = write_config_file(cfg, env)
        with anyio.fail_after(120):
            run = await run_migrator(
                ["migrate", str(src), "--config", str(cfg), "--progress", "never"],
                variables,
                tmp_path,
            )
        ledger = env.imports(env.config.tenants[0].name)
    assert_no_traceback(run)
    assert run.code == 1, (run.out, run.err)
    assert "caf\\xe9\\xff.json" in run.out and "pipe.json" in run.out, run.out
    assert [e["name"] for e in ledger] == ["Good one"]
