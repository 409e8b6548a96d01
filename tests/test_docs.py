"""The docs stay true: every setting in the README, every command in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import typer

from mlteam.cli.main import app
from mlteam.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _commands(cmd, path):
    commands = getattr(cmd, "commands", None)
    if not commands:
        yield " ".join(path)
        return
    for name, sub in commands.items():
        yield from _commands(sub, [*path, name])


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"MLTEAM_{n.upper()}" for n in Settings.model_fields if f"MLTEAM_{n.upper()}" not in readme
    ]
    assert missing == []


def test_every_command_is_in_the_reference() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    commands = list(_commands(typer.main.get_command(app), ["mlteam"]))
    assert len(commands) > 30
    missing = [c for c in commands if f"## `{c}`" not in reference]
    assert missing == [], "run: python scripts/cli_docs.py > docs/cli.md"


def test_every_command_has_help() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    for command in _commands(typer.main.get_command(app), ["mlteam"]):
        res = runner.invoke(app, [*command.split()[1:], "--help"])
        assert res.exit_code == 0, command
        assert "Usage:" in res.output
