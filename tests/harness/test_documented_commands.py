"""Every `harness ...` command line written in README.md and docs/ parses with the CLI as it is:
the docs cannot advertise an option, a command or a choice the code does not have."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROMPT = re.compile(r"^(?:\$ )?(?:\.venv/bin/)?harness(?= |$)")


def documented_commands() -> list[tuple[str, str]]:
    """(where, command line) of every harness command in code blocks and inline code."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        text = doc.read_text()
        in_block, pending = False, ""
        for number, line in enumerate(text.splitlines(), start=1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            if in_block:
                stripped = pending + line.strip()
                if stripped.endswith("\\"):
                    pending = stripped[:-1] + " "
                    continue
                pending = ""
                command = stripped.split("  #")[0].split(" # ")[0].strip()
                if PROMPT.match(command) and re.match(r"^\S+ (-|[a-z])", command + " -"):
                    found.append((f"{doc.name}:{number}", command))
            else:
                for span in re.findall(r"`([^`]+)`", line):
                    if PROMPT.match(span) and len(span.split()) > 1:
                        found.append((f"{doc.name}:{number}", span))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) > 30


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("where, command", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_parses(where: str, command: str):
    # A synopsis marks optional parts with brackets: the command without them must parse.
    words = shlex.split(re.sub(r"\[[^\]]*\]", "", PROMPT.sub("", command)))
    if not words or words[0] in ("-h", "--help", "--version", "-v"):
        return
    assert words[0] in subcommands(), f"{where}: `{command}` names no harness command"
    if len(words) == 1 and words[0] not in ("studies", "ui"):
        return  # prose naming a command (`harness run`), not a command line
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{where}: `{command}` does not parse (exit {exc.code})")
