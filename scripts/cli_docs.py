"""Write docs/cli.md from the CLI itself: `python scripts/cli_docs.py > docs/cli.md`.

tests/test_docs.py fails when a command is missing from that page.
"""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from mlteam.cli.main import app


def walk(cmd, path: list[str]):
    """Every leaf command of the Typer app, as its word path."""
    commands = getattr(cmd, "commands", None)
    if commands:
        for name in sorted(commands):
            yield from walk(commands[name], [*path, name])
    else:
        yield path


def main() -> None:
    root = typer.main.get_command(app)
    print("# mlteam command reference\n")
    print("Generated from the CLI by `python scripts/cli_docs.py > docs/cli.md`.")
    print("Every command talks to the server at `MLTEAM_URL` with `MLTEAM_TOKEN`, except")
    print("`server`, `demo`, `db upgrade`, `users token` and `users create` without a token,")
    print("which work on this host's database directly.\n")
    runner = CliRunner()
    for path in walk(root, ["mlteam"]):
        res = runner.invoke(app, [*path[1:], "--help"], terminal_width=100, color=False)
        print(f"## `{' '.join(path)}`\n")
        print("```text")
        print("\n".join(line.rstrip() for line in res.output.strip("\n").splitlines()))
        print("```\n")


if __name__ == "__main__":
    main()
