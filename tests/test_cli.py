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


def _subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser whose --help a user reads for one command (the fake's own, not its stub)."""
    parsers = _all_parsers()
    del parsers["migrator"], parsers["fake-zuora"]  # the stub hands --help to the fake's parser
    return parsers


def test_every_command_help_has_a_description_its_exit_statuses_and_an_example() -> None:
    """Each command's --help has a one-paragraph description, its exit statuses 0-2 as it uses them, and one example that runs it."""
    parsers = _subcommand_parsers()
    assert set(parsers) >= {
        "migrate",
        "plan",
        "status",
        "verify",
        "diff",
        "activate",
        "rollback",
        "backup",
        "doctor",
        "fake-zuora (its own parser)",
    }
    problems = []
    for name, parser in parsers.items():
        text = parser.format_help()
        command = parser.prog.removeprefix("migrator ")
        if len((parser.description or "").split()) < 15:
            problems.append(f"{name}: no paragraph describing the command")
        epilog = parser.epilog or ""
        if "exit status:\n  0  " not in epilog or "\n  2  " not in epilog:
            problems.append(f"{name}: no exit statuses in --help")
        example = epilog.partition("example:\n")[2].strip()
        if not example.startswith(f"migrator {command} "):
            problems.append(f"{name}: no example running `migrator {command}`")
        if not epilog or epilog.strip() not in text:
            problems.append(f"{name}: the epilog is not printed as written")
    assert not problems, problems


def test_migrate_help_mentions_rollout_and_points_to_its_page(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`migrator migrate --help` says that a [rollout] table changes how it runs and names docs/rollout.md."""
    with pytest.raises(SystemExit):
        main(["migrate", "--help"])
    out = capsys.readouterr().out
    assert "[rollout]" in out and "docs/rollout.md" in out
    assert "exit status:" in out and "example:\n  migrator migrate " in out


def test_the_fake_help_is_reached_through_the_migrator_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`migrator fake-zuora --help` prints the fake's own description, exit statuses and example."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fake-zuora", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "Serve the built-in fake Zuora" in out and "example:\n  migrator fake-zuora " in out
