"""`--help` says what each value is (issue 13, item 2).

The whole argparse tree of `build_parser()` is walked: every command has a
description in its own `--help` and a line in the command list, and every
positional and option has help that says more than its own name (`--image VALUE
image` says nothing).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest
from conftest import run_installed

from defbuilder.cli import build_parser

#: Words that add nothing to an option's name.
FILLER = {"a", "an", "the", "of", "value", "values", "repeatable", "option", "flag", "set"}

#: Actions argparse documents itself.
BUILTIN = (argparse._HelpAction, argparse._VersionAction)


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(command words, parser, its help line in the parent's list), depth first."""
    yield path, parser, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                for words, sub, line in commands(child, (*path, name)):
                    yield words, sub, (listed.get(name) if words == (*path, name) else line)


def name_words(action: argparse.Action) -> set[str]:
    words = [action.dest, *action.option_strings]
    metavar = action.metavar
    if isinstance(metavar, str):
        words.append(metavar)
    elif isinstance(metavar, tuple):
        words.extend(metavar)
    return {w for text in words for w in re.findall(r"[a-z0-9]+", text.lower())}


def help_problem(action: argparse.Action) -> str | None:
    """What is wrong with one action's help, or None."""
    text = action.help
    if text == argparse.SUPPRESS:
        return None
    if not text or not text.strip():
        return "no help"
    said = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in FILLER]
    if len([w for w in said if w not in name_words(action)]) < 2:
        return f"help only repeats its name ({text!r})"
    return None


def problems() -> list[str]:
    found = []
    for words, parser, listed in commands(build_parser()):
        where = " ".join(("defbuilder", *words))
        if words:
            if not listed or listed == argparse.SUPPRESS:
                found.append(f"{where}: no help line in `defbuilder --help`")
            if not parser.description:
                found.append(f"{where}: no description in its own --help")
        for action in parser._actions:
            if isinstance(action, (*BUILTIN, argparse._SubParsersAction)):
                continue
            problem = help_problem(action)
            if problem:
                label = "/".join(action.option_strings) or action.metavar or action.dest
                found.append(f"{where} {label}: {problem}")
    return found


def test_every_command_and_option_is_described() -> None:
    missing = problems()
    assert not missing, "\n".join(missing)


def test_the_walker_sees_the_whole_tree() -> None:
    seen = {words for words, _parser, _line in commands(build_parser())}
    assert {("render",), ("parse",), ("try",), ("from-dockerfile",), ("condor",)} <= seen
    condor = next(p for w, p, _ in commands(build_parser()) if w == ("condor",))
    assert any(a.option_strings == ["--image"] for a in condor._actions)


def test_the_walker_catches_name_only_help() -> None:
    parser = argparse.ArgumentParser(prog="x", description="d")
    sub = parser.add_subparsers()
    cmd = sub.add_parser("cmd", help="a command")
    cmd.add_argument("--image", metavar="VALUE", help="image")
    cmd.add_argument("--request-memory", dest="job_request_memory", help="request_memory")
    cmd.add_argument("--tags", action="append", help="tags (repeatable)")
    cmd.add_argument("file")
    cmd.add_argument("--ok", help="what the test expects")
    bad = [a.dest for a in cmd._actions if not isinstance(a, BUILTIN) and help_problem(a)]
    assert bad == ["image", "job_request_memory", "tags", "file"]
    assert [(w, line) for w, _p, line in commands(parser)] == [((), None), (("cmd",), "a command")]


@pytest.mark.parametrize("command", ["render", "parse", "try", "from-dockerfile"])
def test_own_help_through_the_installed_script(command: str) -> None:
    out = run_installed(command, "--help")
    assert out.returncode == 0 and out.stderr == ""
    parser = next(p for w, p, _ in commands(build_parser()) if w == (command,))
    assert parser.description
    first = " ".join(parser.description.split()[:6])
    assert first in " ".join(out.stdout.split())


def test_set_help_shows_an_example() -> None:
    out = run_installed("render", "--help")
    assert "e.g. --set cuda=12.8" in " ".join(out.stdout.split())


def test_no_help_shows_a_doubled_percent() -> None:
    """argparse %-formats option help (so `%%files` there prints `%files`) but not a
    description without %(prog)s: a doubled % would be shown as is."""
    for _words, parser, _line in commands(build_parser()):
        text = parser.format_help()
        assert "%%" not in text, parser.prog
