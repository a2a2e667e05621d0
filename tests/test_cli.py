"""The `migrator` command line: every subcommand is reachable and usage errors are one line."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from migrator.cli import build_parser, main

COMMANDS = ("migrate", "plan", "status", "verify", "activate", "backup")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each subcommand is registered and prints its usage with --help."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"migrator {command}" in capsys.readouterr().out


def test_installed_entry_point_lists_the_commands() -> None:
    """`python -m migrator.cli --help` (what the installed `migrator` runs) lists every command."""
    out = subprocess.run(
        [sys.executable, "-m", "migrator.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in (*COMMANDS, "fake-zuora"):
        assert command in out.stdout


def test_migrate_without_sources_is_a_one_line_usage_error(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """migrate with neither SOURCE nor --from-tenant exits 2 with one line and no traceback."""
    config = tmp_path / "m.toml"
    config.write_text(
        '[tenants.a]\nbase_url = "http://127.0.0.1:9"\nclient_id = "x"\nclient_secret = "y"\n'
    )
    assert main(["migrate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        "give at least one SOURCE" in err
        and "Traceback" not in err
        and len(err.strip().splitlines()) == 1
    )


def _all_parsers() -> dict[str, argparse.ArgumentParser]:
    from migrator.fake._cli import _parser as fake_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"migrator": parser, **sub.choices, "fake-zuora (its own parser)": fake_parser()}


def test_every_option_and_argument_of_every_command_has_help_text() -> None:
    """Every option and positional argument of every command (the fake's included) says in --help what it is for."""
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in _all_parsers().items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and action.help != argparse.SUPPRESS
        and not (action.help or "").strip()
    ]
    assert not missing, f"options without help text: {missing}"
