"""Every `aft-fast` command the README and docs/ show names options its command has: the docs
cannot drift from the CLI unseen (a renamed or removed flag fails here)."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from aft_fast.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_commands() -> list[str]:
    """The argument text of each `aft-fast ...` in the docs' code blocks and inline code."""
    text = "\n".join(doc.read_text() for doc in DOCS)
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("#"):
                continue
            m = re.search(r"(?:aft-fast|-m aft_fast\.cli)\s+(.*)", line.split("  #")[0])
            if m:
                found.append(m.group(1))
    found += re.findall(r"`aft-fast ([^`]+)`", text)
    return found


def resolve(argv: str) -> tuple[click.Command, list[str]]:
    """The (sub)command the words name and the --flags given to it."""
    words = [w.strip("[](),") for w in argv.split()]
    cmd: click.Command = main
    while isinstance(cmd, click.Group) and words and words[0] in cmd.commands:
        cmd = cmd.commands[words.pop(0)]
    flags = [re.match(r"--[a-z0-9-]+", w).group(0) for w in words if w.startswith("--")]
    return cmd, flags


def test_the_docs_show_commands():
    assert len(doc_commands()) >= 20


@pytest.mark.parametrize("argv", doc_commands())
def test_documented_command_names_a_command_and_its_options(argv):
    cmd, flags = resolve(argv)
    assert cmd is not main, f"`aft-fast {argv}`: no such command"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    unknown = [f for f in flags if f not in known]
    assert not unknown, f"`aft-fast {argv}`: {cmd.name} has no {unknown}"
