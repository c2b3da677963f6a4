"""The CLI reference and the user guide stay in sync with the commands (as sqlite-utils does)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import click
import pytest

from hnprog.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands(group: click.Group = main, prefix: tuple[str, ...] = ()):
    """Every command and group below ``main`` with its path of names."""
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


COMMANDS = sorted(_commands(), key=lambda item: item[0])


def test_the_cli_reference_is_generated_from_the_real_group():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    directive = re.search(r"^::: mkdocs-click\n((?:    :\w+: .*\n)+)", text, flags=re.M)
    assert directive, "docs/cli.md has no mkdocs-click directive"
    options = dict(re.findall(r":(\w+): (.*)", directive.group(1)))
    module = importlib.import_module(options["module"])
    assert getattr(module, options["command"]) is main
    assert options.get("prog_name") == "hnprog"
    assert options.get("list_subcommands") == "true"  # every command gets its own section
    assert "cli.md" in (DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8")


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=lambda v: " ".join(v)
                         if isinstance(v, tuple) else "")
def test_every_command_has_help_and_leaf_commands_an_example(path, command):
    assert command.help and command.get_short_help_str().strip(), f"hnprog {' '.join(path)}"
    if not isinstance(command, click.Group):
        assert re.search(r"\n\s*Examples?:\n", command.help), f"hnprog {' '.join(path)}"


def test_every_command_is_explained_in_the_user_guide():
    pages = [p for p in DOCS.glob("*.md") if p.name != "cli.md"] + [DOCS.parent / "README.md"]
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    missing = [" ".join(path) for path, command in COMMANDS
               if not isinstance(command, click.Group)
               and not re.search(rf"hnprog {' '.join(path)}\b", text)]
    assert not missing, f"commands the user guide never names: {missing}"
