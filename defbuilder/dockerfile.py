"""Dockerfile -> the recipe model and a readable recipe script (``defbuilder from-dockerfile``).

Reading follows BuildKit, the builder behind ``docker build``
(https://github.com/moby/buildkit, ``frontend/dockerfile/parser`` for lines,
continuations, parser directives and heredocs, ``frontend/dockerfile/instructions``
for each instruction's arguments and flags, ``frontend/dockerfile/shell/lex.go`` for
variable substitution) and Docker's reference
(https://docs.docker.com/reference/dockerfile/). What Docker refuses is refused
here too, as ``Dockerfile:LINE: message``. Each stage becomes a ``Stage`` built
with the DSL's own classes; the script is written from that model by
``defbuilder.codegen.to_python`` (this module writes no Python and quotes shell
words only with ``defbuilder.render.sh_quote``). What Docker does is kept, and what
Apptainer cannot honour becomes a warning with the reason (never a silent drop):

* Variables (``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``, ``${VAR?}``,
  ``${VAR#pattern}``..., escapes and quotes) are substituted where Docker
  substitutes them ("Environment replacement": FROM with the ARGs declared before
  the first FROM; ENV, ARG, WORKDIR, COPY/ADD, LABEL, USER, EXPOSE, VOLUME,
  STOPSIGNAL in a stage), never in RUN, CMD or ENTRYPOINT. A build argument stays a
  ``BuildArg`` (``{{ NAME }}``, its default in ``%arguments``), so ``apptainer build
  --build-arg`` still sets it; a variable the Dockerfile does not set (``$PATH``
  from the base image) is read by the shell that sets the value.
* ``RUN`` -> ``%post``: each RUN in its own subshell ``( ... )`` with ``set +e``,
  like Docker's fresh ``/bin/sh -c`` per RUN: it starts in the WORKDIR with the
  ENV/ARG variables and nothing a previous RUN did to its shell (``cd``,
  ``export``), and a RUN fails when its last command fails. Exec form and other
  SHELLs are run with ``exec`` and their exact argv. ``RUN <<EOF`` heredocs are
  run as BuildKit runs them.
* ``ENV`` -> ``%environment`` and an ``export`` at that point of ``%post``;
  ``ARG`` -> ``export NAME='{{ NAME }}'`` in ``%post`` (Docker exposes ARGs to RUN).
* ``WORKDIR`` -> ``mkdir -p && cd`` in ``%post`` and, in the final stage, the
  runscript's working directory (Docker starts there).
* ``COPY``/``ADD`` of local files -> ``%files`` (``--from=stage`` -> ``%files from``;
  ``--from=IMAGE`` -> an extra stage bootstrapped from that image; ``--from=N``
  the N-th stage; ``--chmod``/``--chown`` -> ``chmod``/``chown`` in ``%post``;
  heredocs -> ``printf`` in ``%post``). Apptainer copies all %files *before* %post
  runs, so a COPY after a RUN is copied to ``/.defbuilder-copy`` and put in place by
  %post at that point. ``ADD`` of a URL, a git repository or a local archive ->
  explicit ``%post`` steps, with a warning.
* ``FROM <earlier stage>`` -> the new stage starts from that stage's base image and
  repeats its steps (files, environment, %post, labels, entrypoint), which gives
  the same file system; stages the final one neither copies from nor builds on are
  left out, as BuildKit skips them.
* ``LABEL``/``MAINTAINER`` -> ``%labels``; ``ENTRYPOINT``/``CMD`` -> the
  ``Entrypoint`` block, kept as ``Stage(...) + Entrypoint(...)`` in the script.
* ``pixi shell-hook ... >> FILE`` in a RUN -> also a static activation file sourced
  by ``%environment`` in the stages that copy the environment
  (``defbuilder.blocks.pixi.static_activation``).
* ``USER``, ``EXPOSE``, ``VOLUME``, ``HEALTHCHECK``, ``STOPSIGNAL``, ``ONBUILD``,
  ``FROM --platform`` with a fixed platform, ``RUN --mount``: warnings.

Apptainer replaces ``{{ NAME }}`` in the whole definition before building it
(https://github.com/apptainer/apptainer/blob/v1.5.3/internal/pkg/build/args/reader.go,
``defbuilder.apptainer.PLACEHOLDER``); words this module writes are quoted so that
it cannot match, and Dockerfile text copied as is (a shell-form RUN, a path, a
label) that would match is reported.

>>> conv = convert("FROM alpine:3.20 AS class\\nCMD [\\"top\\"]\\n")
>>> conv.recipe.stages[0].name, "class_ = Stage(" in conv.source
('class', True)
"""

from __future__ import annotations

import json
import posixpath
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence

import attrs

from .apptainer import (
    GO_SPACE,
    build_arg_uses,
    files_contents_source,
    go_trim,
    has_placeholder,
    read_arguments,
)
from .blocks.entrypoint import Entrypoint
from .blocks.pixi import static_activation
from .codegen import Call, Composed, to_python
from .errors import DefError, Origin
from .model._values import BuildArg
from .model.header import Header
from .model.sections import Environment, EnvItem, Export, FileEntry, Files, Label, Script
from .model.stage import Block, Recipe, Stage
from .render import export_line, sh_quote

__all__ = ["Conversion", "convert"]

Warn = Callable[[int, str], None]

# ===========================================================================
# Words: what a substitution gives
# ===========================================================================


@attrs.frozen
class _Arg:
    """A build argument: ``{{ NAME }}`` for Apptainer, ``default`` in %arguments
    (``None``: declared before the first FROM without a value)."""

    name: str
    default: str | None


@attrs.frozen
class _Var:
    """A variable the Dockerfile does not set (``$PATH`` of the base image), left to
    the shell that evaluates the value: ``${NAME<op><word>}``."""

    name: str
    op: str = ""
    word: tuple[_Part, ...] = ()


@attrs.frozen
class _Cmd:
    """A value the shell computes: ``$(text)`` (Docker's automatic platform ARGs)."""

    text: str


_Part = str | _Arg | _Var | _Cmd
Word = tuple[_Part, ...]


def _norm(parts: Iterable[_Part]) -> Word:
    out: list[_Part] = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] = out[-1] + p
                continue
        out.append(p)
    return tuple(out)


def _literal(word: Word) -> str | None:
    """The text of a word made of literal parts only."""
    if all(isinstance(p, str) for p in word):
        return "".join(p for p in word if isinstance(p, str))
    return None


def _flat(word: Word) -> str:
    """Literal parts only (split mode, where every part is literal)."""
    return "".join(p for p in word if isinstance(p, str))


def _with_defaults(word: Word) -> str | None:
    """The word with each build argument at its default; ``None`` if the shell
    computes a part."""
    out = []
    for p in word:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, _Arg):
            out.append(p.default or "")
        else:
            return None
    return "".join(out)


# ===========================================================================
# Variable substitution: a port of BuildKit's frontend/dockerfile/shell/lex.go
# ===========================================================================


class _LexError(Exception):
    pass


#: lookup(name) -> the variable's word, or None when the Dockerfile does not set it.
Lookup = Callable[[str], Word | None]
#: unknown(name, op, word) -> what a variable the Dockerfile does not set gives.
Unknown = Callable[[str, str, Word], Word]

_SPECIAL = "@*#?-$!0"


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


class _Words:
    """lex.go ``wordsStruct``: splitting at white space outside quotes."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in GO_SPACE and self.in_word:
            if self.buf:
                self.words.append(self.buf)
                self.buf, self.in_word = "", False
        elif ch not in GO_SPACE:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def get(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf, self.in_word = "", False
        return self.words


class _Lex:
    """``shell.Lex`` on one word. ``lookup`` gives the variables the Dockerfile
    sets; ``unknown`` decides what the others give (Docker: the base image's value,
    else empty)."""

    def __init__(
        self,
        text: str,
        escape: str = "\\",
        lookup: Lookup | None = None,
        unknown: Unknown | None = None,
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_quotes: bool = False,
        skip_unset: bool = False,
    ) -> None:
        self.text, self.pos, self.escape = text, 0, escape
        self.lookup = lookup or (lambda _name: None)
        self.unknown = unknown or (lambda _n, _o, _w: ())
        self.raw_quotes, self.raw_escapes = raw_quotes, raw_escapes
        self.skip_quotes, self.skip_unset = skip_quotes, skip_unset

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self.pos += 1
        return ch

    def process(self) -> tuple[Word, list[str]]:
        return self._stop_on("", self.raw_escapes)

    def _stop_on(self, stop: str, raw_escapes: bool) -> tuple[Word, list[str]]:
        result: list[_Part] = []
        words = _Words()
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            while self._peek():
                ch = self._peek()
                if stop and ch == stop:
                    self._next()
                    return _norm(result), words.get()
                if ch == "$":
                    parts = self._dollar()
                    result += parts
                    words.add_string(_flat(tuple(parts)))
                elif ch == "<":
                    tmp = self._maybe_heredoc()
                    result.append(tmp)
                    words.add_raw(tmp)
                elif ch in "'\"" and not self.skip_quotes:
                    parts = self._single() if ch == "'" else self._double()
                    result += parts
                    words.add_raw(_flat(tuple(parts)))
                else:
                    ch = self._next()
                    if ch == self.escape:
                        if self.raw_escapes:
                            words.add_raw(ch)
                            result.append(ch)
                        ch = self._next()
                        if not ch:
                            break
                        words.add_raw(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop:
                raise _LexError(f"unexpected end of statement while looking for matching {stop}")
            return _norm(result), words.get()
        finally:
            self.raw_escapes = saved

    def _single(self) -> list[_Part]:
        quote = self._next()
        out: list[_Part] = [quote] if self.raw_quotes else []
        while True:
            ch = self._next()
            if not ch:
                raise _LexError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return out
            out.append(ch)

    def _double(self) -> list[_Part]:
        quote = self._next()
        out: list[_Part] = [quote] if self.raw_quotes else []
        while True:
            peek = self._peek()
            if not peek:
                raise _LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if peek == '"':
                self._next()
                if self.raw_quotes:
                    out.append('"')
                return out
            if peek == "$":
                out += self._dollar()
                continue
            ch = self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                peek = self._peek()
                if not peek:
                    continue
                if peek in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _maybe_heredoc(self) -> str:
        self._next()
        if self._peek() != "<":
            return "<"
        self._next()
        space = ""
        while self._peek() in ("\t", "\r", " ") and self._peek():
            space += self._next()
        return "<<" + space

    def _name(self) -> str:
        name = ""
        while self._peek():
            ch = self._peek()
            if not name and _is_digit(ch):
                while self._peek() and _is_digit(self._peek()):
                    name += self._next()
                return name
            if not name and ch in _SPECIAL:
                return self._next()
            if not (ch.isalpha() or _is_digit(ch) or ch == "_"):
                break
            name += self._next()
        return name

    def _dollar(self) -> list[_Part]:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return ["$"]
            return list(self._ref(name, "", (), f"${name}"))
        self._next()
        peek = self._peek()
        if not peek:
            raise _LexError("syntax error: missing '}'")
        if peek in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        if ch == "}":
            return list(self._ref(name, "", (), "${" + name + "}"))
        if not ch:
            raise _LexError("syntax error: missing '}'")
        op = ch
        if ch == ":":
            ch = self._next()
            op += ch
        if op.startswith(":") or ch in "+-?#%":
            raw = ch in "#%"
            if op.startswith(":") and raw:
                raise _LexError(f"unsupported modifier ({op}) in substitution")
            word = self._until("}", raw)
            return list(self._ref(name, op, word, "${" + name + op + _flat(word) + "}"))
        if ch == "/":
            if self._peek() == "/":
                self._next()
                op = "//"
            pattern = self._until("/", True)
            repl = self._until("}", True)
            return list(self._ref(name, op, (_flat(pattern), _flat(repl)), "${" + name + op + "}"))
        raise _LexError(f"unsupported modifier ({op}) in substitution")

    def _until(self, stop: str, raw: bool) -> Word:
        try:
            return self._stop_on(stop, raw)[0]
        except _LexError:
            if not self._peek():
                raise _LexError(f"syntax error: missing '{stop}'") from None
            raise

    def _ref(self, name: str, op: str, word: Word, text: str) -> Word:
        value = self.lookup(name)
        if value is None and self.skip_unset:
            return (text,)
        if op.lstrip(":") not in ("", "-", "+", "?", "#", "%", "/", "//"):
            raise _LexError(f"unsupported modifier ({op}) in substitution")
        if value is None:
            return self.unknown(name, op, word)
        return _apply(name, op, word, value)


def _state(value: Word) -> tuple[bool, bool]:
    """(set, empty) of a variable's word; a build argument counts with its default."""
    if len(value) == 1 and isinstance(value[0], _Arg) and value[0].default is None:
        return False, True
    text = _with_defaults(value)
    return True, (text == "" if text is not None else False)


def _apply(name: str, op: str, word: Word, value: Word) -> Word:
    """``${name<op>word}`` for a variable the Dockerfile sets to ``value``."""
    is_set, empty = _state(value)
    colon = op.startswith(":")
    bare = op[1:] if colon else op
    missing = not is_set or (colon and empty)
    if op == "":
        return value  # an ARG declared without a value stays a build argument
    if bare == "-":
        if not missing:
            return value
        if not is_set and _literal(word) is not None:
            # an ARG without a value: Apptainer's --build-arg can still set it
            arg = value[0]
            assert isinstance(arg, _Arg)
            return (_Arg(arg.name, _literal(word)),)
        return word
    if bare == "+":
        return () if missing else word
    if bare == "?":
        if not is_set:
            raise _LexError(f"{name}: {_flat(word) or 'is not allowed to be unset'}")
        if colon and empty:
            raise _LexError(f"{name}: {_flat(word) or 'is not allowed to be empty'}")
        return value
    text = _with_defaults(value)
    if text is None:
        raise _LexError(
            f"${{{name}{op}...}}: the value of {name} is only known when the image is built"
        )
    if bare in ("#", "%"):
        pattern = _flat(word)
        greedy = pattern.startswith(bare)
        if greedy:
            pattern = pattern[1:]
        if bare == "%":
            return (_trim_suffix(pattern, text, greedy),)
        return (_trim_prefix(pattern, text, greedy),)
    pattern, repl = (str(p) for p in word) if len(word) == 2 else ("", "")
    regex = _pattern(pattern, True, False)
    if op == "//":
        return (regex.sub(lambda _m: repl, text),)
    return (regex.sub(lambda _m: repl, text, count=1),)


def _pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """lex.go ``convertShellPatternToRegex``: ``*``, ``?`` and ``\\`` escapes."""
    out = "^" if anchored else ""
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out += star
        elif ch == "?":
            out += "."
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue
            nxt = pattern[i] if i < len(pattern) else ""
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise _LexError(f"invalid pattern ({pattern}) in substitution")
            out += re.escape(nxt)
        else:
            out += re.escape(ch)
    return re.compile(out, re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern(pattern, greedy, True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    out = list(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        ch = pattern[i]
        if ch == "\\" and i != last:
            out[last - i - 1] = ch
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = ch
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _split_words(text: str, escape: str = "\\") -> list[str]:
    """``ProcessWords`` with no variables set and ``SkipUnsetEnv`` (parser.go's use)."""
    return _Lex(text, escape, raw_quotes=True, raw_escapes=True, skip_unset=True).process()[1]


# ===========================================================================
# Reading: a port of BuildKit's frontend/dockerfile/parser
# ===========================================================================

_WS = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.ASCII)
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", re.ASCII)
_JSON_ERR = "when using JSON array syntax, arrays must be comprised of strings only"


@attrs.frozen
class _Heredoc:
    name: str
    chomp: bool
    expand: bool
    content: str = ""


@attrs.frozen
class _Instruction:
    """One instruction as BuildKit's parser leaves it."""

    cmd: str  # lower case
    keyword: str  # as written
    flags: tuple[str, ...]
    args: tuple[str, ...]
    json: bool
    rest: str  # the text after the flags
    rest_at: int  # where ``rest`` starts in ``line``
    line: str  # the instruction, continuation lines joined
    joins: tuple[int, ...]  # offsets in ``line`` where two physical lines were joined
    start: int
    end: int
    heredocs: tuple[_Heredoc, ...] = ()


class _ParseError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def _lstrip(text: str) -> str:
    return text.lstrip(GO_SPACE)


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _parse_heredoc(word: str) -> _Heredoc | None:
    """parser.go ``ParseHeredoc``."""
    m = _HEREDOC.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    try:
        words = _Lex(rest, skip_unset=True).process()[1]
        if len(words) != 1:
            return None
        raw = _Lex(rest, raw_quotes=True, skip_unset=True).process()[1]
    except _LexError as exc:
        raise _ParseError(str(exc), 0) from None
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return _Heredoc(words[0], m.group(2) == "-", quotes == raw_quotes)


def _words(rest: str, escape: str) -> list[str]:
    """line_parsers.go ``parseWords``: white-space separated, quotes kept."""
    words: list[str] = []
    buf, quote, blank_ok, phase = "", "", False, "space"
    i = 0
    while i <= len(rest):
        ch = rest[i] if i < len(rest) else ""
        if phase == "space":
            if i == len(rest):
                break
            if ch in GO_SPACE:
                i += 1
                continue
            phase = "word"
        if i == len(rest):
            if blank_ok or buf:
                words.append(buf)
            break
        if phase == "word":
            if ch in GO_SPACE:
                phase = "space"
                if blank_ok or buf:
                    words.append(buf)
                buf, blank_ok = "", False
                i += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            if ch == escape:
                if i + 1 == len(rest):
                    i += 1
                    continue
                buf += ch
                i += 1
                ch = rest[i]
            buf += ch
            i += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
        if ch == escape and quote != "'":
            if i + 1 == len(rest):
                phase = "word"
                i += 1
                continue
            i += 1
            buf += ch
            ch = rest[i]
        buf += ch
        i += 1
    return words


def _name_vals(rest: str, key: str, escape: str) -> list[str]:
    """line_parsers.go ``parseNameVal`` (ENV, LABEL): [name, value, sep] triples."""
    words = _words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _ParseError(f"{key} must have two arguments", 0)
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise _ParseError(
                f"Syntax error - can't find = in {json.dumps(word)}. Must be of the form: "
                "name=value",
                0,
            )
        name, value = word.split("=", 1)
        out += [name, value, "="]
    return out


def _json_list(rest: str) -> list[str] | None:
    """line_parsers.go ``parseJSON``: a JSON array of strings, or None."""
    text = rest.lstrip(GO_SPACE)
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _ParseError(_JSON_ERR, 0)
    return value


def _node_args(cmd: str, rest: str, escape: str) -> tuple[list[str], bool]:
    """The dispatch table of parser.go: each instruction's arguments."""
    if cmd in ("add", "copy", "volume"):
        form = _json_list(rest)
        if form is not None:
            return form, True
        return ([w for w in _WS.split(rest) if w] if rest else []), False
    if cmd in ("cmd", "entrypoint", "run", "shell"):
        if not rest:
            return [], False
        form = _json_list(rest)
        return (form, True) if form is not None else ([rest], False)
    if cmd == "arg":
        return _words(rest, escape), False
    if cmd in ("env", "label"):
        return _name_vals(rest, cmd.upper(), escape), False
    if cmd in ("expose", "from"):
        return ([w for w in _WS.split(rest) if w] if rest else []), False
    if cmd in ("maintainer", "stopsignal", "user", "workdir", "healthcheck", "onbuild"):
        return ([rest] if rest else []), False
    return [], False


def _builder_flags(line: str, escape: str) -> tuple[int, list[str]]:
    """split_command.go ``extractBuilderFlags``: (where the arguments start, flags)."""
    words: list[str] = []
    buf, quote, blank_ok, phase = "", "", False, "space"
    pos = 0
    while pos <= len(line):
        ch = line[pos] if pos < len(line) else ""
        if phase == "space":
            if pos == len(line):
                break
            if ch in GO_SPACE:
                pos += 1
                continue
            if ch != "-" or pos + 1 == len(line) or line[pos + 1] != "-":
                return pos, words
            phase = "word"
        if pos == len(line):
            if buf != "--" and (blank_ok or buf):
                words.append(buf)
            break
        if phase == "word":
            if ch in GO_SPACE:
                phase = "space"
                if buf == "--":
                    return pos, words
                if blank_ok or buf:
                    words.append(buf)
                buf, blank_ok = "", False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == len(line):
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf += ch
            pos += 1
            continue
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == len(line):
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf += ch
        pos += 1
    return len(line), words


def _read(text: str) -> list[_Instruction]:
    """parser.go ``Parse``: instructions with their lines; raises ``_ParseError``."""
    escape = "\\"
    directives_done, seen = False, set()
    raw_lines = text.split("\n")
    lines = [ln + "\n" for ln in raw_lines[:-1]] + ([raw_lines[-1]] if raw_lines[-1] else [])

    def continuation() -> re.Pattern[str]:
        e = re.escape(escape)
        return re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z")

    cont = continuation()

    def process(token: str, strip: bool, number: int) -> str:
        nonlocal directives_done, escape, cont
        token = token.rstrip("\r\n")
        if strip:
            token = _lstrip(token)
        if not directives_done:
            directive = None
            if token.startswith("#"):
                m = _DIRECTIVE.match(_lstrip(token[1:]))
                if m and m.group(1).lower() in ("syntax", "escape", "check"):
                    directive = (m.group(1).lower(), m.group(2))
            if directive is None:
                directives_done = True
            else:
                key, value = directive
                if key in seen:
                    raise _ParseError(f"only one {key} parser directive can be used", number)
                seen.add(key)
                if key == "escape":
                    if value not in ("`", "\\"):
                        raise _ParseError(
                            f"invalid escape token '{value}' does not match ` or \\", number
                        )
                    escape = value
                    cont = continuation()
        return "" if _is_comment(token) else token

    def trim_cont(token: str) -> tuple[str, bool]:
        m = cont.search(token)
        if m:
            return token[: m.start()] + (m.group(1) or ""), False
        return token, True

    out: list[_Instruction] = []
    i, current = 0, 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if current == 0:
            raw = raw.removeprefix("\ufeff")
        token = process(raw, True, current + 1)
        current += 1
        start = current
        token, eol = trim_cont(token)
        if eol and not token:
            continue
        pieces = [token]
        while not eol and i < len(lines):
            raw = lines[i]
            i += 1
            token = process(raw, False, current + 1)
            current += 1
            if _is_comment(raw) or not _lstrip(token.rstrip("\r\n")):
                continue
            token, eol = trim_cont(token)
            pieces.append(token)
        line = "".join(pieces)
        joins, at = [], 0
        for piece in pieces[:-1]:
            at += len(piece)
            joins.append(at)
        try:
            ins = _instruction(line, escape, tuple(joins), start, current)
        except _ParseError as exc:
            raise _ParseError(exc.message, start) from None
        if ins.cmd in ("add", "copy", "run") and not ins.json and "<<" in line:
            docs = []
            try:
                words = _split_words(line)
            except _LexError:
                words = []
            for word in words:
                try:
                    doc = _parse_heredoc(word)
                except _ParseError as exc:
                    raise _ParseError(exc.message, start) from None
                if doc is None:
                    continue
                content, terminated = [], False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    end = raw.rstrip("\r\n")
                    if doc.chomp:
                        end = end.lstrip("\t")
                    if end == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise _ParseError("unterminated heredoc", start)
                docs.append(attrs.evolve(doc, content="".join(content)))
            ins = attrs.evolve(ins, heredocs=tuple(docs), end=current)
        out.append(ins)
    if not out:
        raise _ParseError("file with no instructions", max(current, 1))
    return out


def _instruction(
    line: str, escape: str, joins: tuple[int, ...], start: int, end: int
) -> _Instruction:
    """split_command.go ``splitCommand`` and the dispatch table."""
    lead = len(line) - len(_lstrip(line))
    trimmed = go_trim(line)
    m = _WS.search(trimmed)
    keyword = trimmed[: m.start()] if m else trimmed
    flags: list[str] = []
    rest, rest_at = "", len(line)
    if m:
        after = trimmed[m.end() :]
        at, flags = _builder_flags(after, escape)
        tail = after[at:]
        rest = go_trim(tail)
        rest_at = lead + m.end() + at + (len(tail) - len(tail.lstrip(GO_SPACE)))
    cmd = keyword.lower()
    args, is_json = _node_args(cmd, rest, escape)
    return _Instruction(
        cmd, keyword, tuple(flags), tuple(args), is_json, rest, rest_at, line, joins, start, end
    )


#: Each instruction's flags (instructions/parse.go, commands_run*.go): name -> kind.
_FLAGS: dict[str, dict[str, str]] = {
    "add": {
        "chown": "s",
        "chmod": "s",
        "link": "b",
        "keep-git-dir": "b",
        "checksum": "s",
        "unpack": "b",
        "exclude": "m",
    },
    "copy": {
        "chown": "s",
        "from": "s",
        "chmod": "s",
        "link": "b",
        "exclude": "m",
        "parents": "b",
    },
    "from": {"platform": "s"},
    "run": {"mount": "m", "network": "s", "security": "s", "device": "m"},
    "healthcheck": {
        "interval": "s",
        "timeout": "s",
        "start-period": "s",
        "start-interval": "s",
        "retries": "s",
    },
}


def _parse_flags(ins: _Instruction) -> dict[str, list[str]]:
    """bflag.go ``BFlags.Parse``."""
    known = _FLAGS.get(ins.cmd, {})
    out: dict[str, list[str]] = {}
    for arg in ins.flags:
        if arg == "--":
            break
        name, sep, value = arg.partition("=")
        key = name[2:]
        kind = known.get(key)
        if kind is None:
            raise _ParseError(f"unknown flag: {name}", ins.start)
        if key in out and kind != "m":
            raise _ParseError(f"duplicate flag specified: {name}", ins.start)
        if kind == "b":
            if sep and not value:
                raise _ParseError(f"missing a value on flag: {name}", ins.start)
            if value.lower() not in ("true", "false", ""):
                raise _ParseError(
                    f"expecting boolean value for flag {name}, not: {value}", ins.start
                )
            out[key] = ["false" if value.lower() == "false" else "true"]
        else:
            if not sep:
                raise _ParseError(f"missing a value on flag: {name}", ins.start)
            out.setdefault(key, []).append(value)
    return out


# ===========================================================================
# Shell words and RUN text
# ===========================================================================

_NAME_CHARS = re.compile(r"[A-Za-z0-9_]")
_SIMPLE_PARAM = re.compile(r"\$\{[A-Za-z0-9_@*#?$!-]+\}")
_POSIX_SHELL = re.compile(r"(^|/)(sh|bash|dash|ash|ksh|zsh)\Z")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _dq(text: str, braces: bool = False) -> str:
    """Literal text inside double quotes; ``{{`` split and each line start protected
    like ``sh_quote`` does (``{""{``, ``\\n""``)."""
    inner = re.sub(r'(["\\`$' + ("}" if braces else "") + "])", r"\\\1", text)
    inner = inner.replace("{{", '{""{')
    return inner.replace("\n", '\n""')


def _dq_word(word: Word, braces: bool = False) -> str:
    out = ""
    for i, p in enumerate(word):
        if isinstance(p, str):
            out += _dq(p, braces)
        elif isinstance(p, _Arg):
            out += "{{ " + p.name + " }}"
        elif isinstance(p, _Cmd):
            out += "$(" + p.text + ")"
        elif p.op:
            out += "${" + p.name + p.op + _dq_word(p.word, braces=True) + "}"
        else:
            nxt = word[i + 1] if i + 1 < len(word) else ""
            follows = isinstance(nxt, str) and _NAME_CHARS.match(nxt[:1])
            out += "${" + p.name + "}" if follows or braces else "$" + p.name
    return out


def _arg_quoted(arg: _Arg) -> str | None:
    default = arg.default or ""
    if "'" not in default:
        return "'{{ " + arg.name + " }}'"
    if not set('"$`\\') & set(default):
        return '"{{ ' + arg.name + ' }}"'
    return None


def _sh_word(word: Word) -> str:
    """One POSIX-sh word that gives ``word``: literal text quoted as ``sh_quote`` does,
    build arguments as ``'{{ NAME }}'``, variables and commands inside double quotes."""
    text = _literal(word)
    if text is not None:
        return sh_quote(text)
    if any(isinstance(p, (_Var, _Cmd)) for p in word):
        return '"' + _dq_word(word) + '"'
    out = ""
    for p in word:
        if isinstance(p, str):
            out += sh_quote(p)
        elif isinstance(p, _Arg):
            out += _arg_quoted(p) or sh_quote(p.default or "")
    return out


def _safe_joins(text: str, offsets: Sequence[int]) -> list[int]:
    """The offsets in a shell command where a backslash-newline may be put back: sh
    removes it there (outside single quotes and comments), so the command stays
    the one Docker runs. Stops at anything it does not follow for sure."""
    wanted, ok = set(offsets), []
    stack = ["n"]  # n: plain, d: double quotes, s: single quotes, p: $( )
    i, word_start = 0, True
    while i <= len(text):
        if i in wanted and stack[-1] != "s":
            ok.append(i)
        if i == len(text):
            break
        c = text[i]
        top = stack[-1]
        if top == "s":
            if c == "'":
                stack.pop()
            i += 1
            continue
        if c == "\\":
            i += 2
            word_start = False
            continue
        simple = _SIMPLE_PARAM.match(text, i)
        if simple:  # ${NAME}: nothing in it to quote
            i = simple.end()
            word_start = False
            continue
        if top == "d":
            if c == '"':
                stack.pop()
            elif c == "`" or text.startswith(("$(", "${"), i):
                break
            i += 1
            continue
        if c == "#" and word_start:
            break  # a comment: Docker's goes on over the joined lines, sh's would not
        if c == "`" or text.startswith(("$'", "$(", "${"), i):
            break
        if c == "'":
            stack.append("s")
        elif c == '"':
            stack.append("d")
        word_start = c in " \t;&|()<>\n"
        i += 1
    return ok


def _rebreak(text: str, joins: Sequence[int]) -> str:
    """``text`` with a backslash-newline at each safe join of the original lines."""
    out, prev = [], 0
    for at in _safe_joins(text, joins):
        out.append(text[prev:at])
        prev = at
    out.append(text[prev:])
    return "\\\n".join(out)


@attrs.frozen
class _Run:
    """A RUN, rendered when the stage's %post shell is known."""

    line: int
    shell: tuple[str, ...] | None  # the SHELL of a shell-form RUN (None: any)
    argv: tuple[str, ...]  # the exact argv: exec form, or SHELL + [command]
    body: str  # %post lines, when the %post shell is ``shell``; "": only ``argv``


def _run_lines(run: _Run, post_shell: tuple[str, ...]) -> list[str]:
    head = f"# RUN (line {run.line})"
    if run.body and (run.shell is None or run.shell == post_shell):
        return [head, "(set +e", run.body, ")"]
    return [head, "(exec " + " ".join(sh_quote(w) for w in run.argv) + ")"]


def _body_ok(text: str) -> bool:
    try:
        Script(text, verbatim=True)
    except DefError:
        return False
    return True


# ===========================================================================
# Stages
# ===========================================================================

_UNSUPPORTED = {
    "user": (
        "Apptainer runs every container as the calling user, and %post runs as root",
        "drop it; use --fakeroot at build time if %post needs root",
    ),
    "expose": (
        "Apptainer shares the host's network; there are no ports to publish",
        "document the port; start the service with `apptainer instance start`",
    ),
    "volume": ("Apptainer has no volumes", "bind a host directory at run time: --bind DIR"),
    "healthcheck": ("Apptainer has no health checks", "put a check in %test"),
    "stopsignal": (
        "Apptainer sends SIGTERM to the container's process",
        "handle SIGTERM in the program",
    ),
    "onbuild": (
        "Apptainer has no build triggers",
        "add the steps to the recipe that builds on this one",
    ),
}
_KNOWN = {"from", "run", "cmd", "label", "maintainer", "env", "add", "copy", "entrypoint"}
_KNOWN |= {"workdir", "arg", "shell", *_UNSUPPORTED}
#: Where a COPY after a RUN waits in the image until %post puts it in place.
_STAGING = "/.defbuilder-copy"
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz|tar\.zst)$")
_DEFAULT_SHELL = ("/bin/sh", "-c")
_UNAME_ARCH = (
    'case "$(uname -m)" in x86_64) echo amd64;; aarch64|arm64) echo arm64;; '
    "armv7*|armv6*) echo arm;; i?86) echo 386;; *) uname -m;; esac"
)
_UNAME_VARIANT = 'case "$(uname -m)" in armv7*) echo v7;; armv6*) echo v6;; esac'
#: Docker's automatic platform ARGs ("Automatic platform ARGs in the global scope"):
#: the platform being built for is the build host's, computed by the shell.
_PLATFORM_ARGS: dict[str, Word] = {}
for _who in ("BUILD", "TARGET"):
    _PLATFORM_ARGS[_who + "OS"] = ("linux",)
    _PLATFORM_ARGS[_who + "ARCH"] = (_Cmd(_UNAME_ARCH),)
    _PLATFORM_ARGS[_who + "VARIANT"] = (_Cmd(_UNAME_VARIANT),)
    _PLATFORM_ARGS[_who + "PLATFORM"] = ("linux/", _Cmd(_UNAME_ARCH))


@attrs.define
class _Stage:
    """What one ``FROM`` collects, in model values, until the stage is built."""

    index: int
    docker_name: str | None  # as written after AS (Docker compares it in lower case)
    header: Header
    image: str
    origin: Origin
    parent: int | None = None
    args: dict[str, BuildArg] = attrs.field(factory=dict)
    files: list[tuple[int | str | None, FileEntry]] = attrs.field(factory=list)
    env: list[EnvItem] = attrs.field(factory=list)
    post: list[str | _Run] = attrs.field(factory=list)
    labels: dict[str, Label] = attrs.field(factory=dict)
    entrypoint: list[str] | str | None = None
    cmd: list[str] | str | None = None
    cmd_set: bool = False
    shell: tuple[str, ...] = _DEFAULT_SHELL
    workdir: Word | None = None
    ran: bool = False
    pixi_envs: list[tuple[str, str, str]] = attrs.field(factory=list)  # (env, manifest, out)
    words: dict[str, Word] = attrs.field(factory=dict)  # variables for substitution
    env_names: set[str] = attrs.field(factory=set)
    arg_names: set[str] = attrs.field(factory=set)
    name: str | None = None  # the Apptainer stage name, chosen at the end

    @property
    def line(self) -> int:
        return self.origin.line or 1

    def child(self, index: int, docker_name: str | None, origin: Origin, image: str) -> _Stage:
        """A stage that starts ``FROM`` this one: Docker keeps the image (files, ENV,
        WORKDIR, SHELL, labels, ENTRYPOINT/CMD), not the ARGs."""
        args_only = sorted(self.arg_names - self.env_names)
        post = list(self.post)
        if args_only:
            post.append(f"unset {' '.join(args_only)}  # the ARGs of stage {self.label()}")
        return _Stage(
            index,
            docker_name,
            attrs.evolve(self.header, stage=None),
            image,
            origin,
            parent=self.index,
            args=dict(self.args),
            files=list(self.files),
            env=list(self.env),
            post=post,
            labels=dict(self.labels),
            entrypoint=self.entrypoint,
            cmd=self.cmd,
            shell=self.shell,
            workdir=self.workdir,
            ran=self.ran,
            pixi_envs=list(self.pixi_envs),
            words={k: v for k, v in self.words.items() if k in self.env_names},
            env_names=set(self.env_names),
        )

    def label(self) -> str:
        return self.docker_name or str(self.index)

    def declare(self, arg: _Arg) -> bool:
        """Make ``arg`` a build argument of this stage; False when the stage already has
        one of that name with another default (Apptainer keeps one per stage)."""
        default = arg.default
        have = self.args.get(arg.name)
        if have is not None and have.default != default:
            if have.default is None:
                self.args[arg.name] = BuildArg(arg.name, default, origin=have.origin)
                return True
            return default is None
        if have is None:
            self.args[arg.name] = BuildArg(arg.name, default, origin=self.origin)
        return True


@attrs.frozen
class Conversion:
    """A converted Dockerfile.

    ``recipe`` is the model; ``source`` the recipe script that builds it
    (``codegen.to_python``: it renders to the same bytes); ``warnings`` each
    ``file:line: text``.
    """

    recipe: Recipe
    source: str
    warnings: tuple[str, ...]


def _post_shell(form: Sequence[str]) -> tuple[str | None, str | None]:
    """``SHELL [...]`` as ``%post -c SHELL``: the shell, or why it cannot be kept."""
    if tuple(form) == _DEFAULT_SHELL:
        return None, None
    if (
        len(form) == 2
        and form[1] == "-c"
        and form[0].startswith("/")
        and not any(c.isspace() for c in form[0])
    ):
        return form[0], None
    return None, (
        "%post can only name an interpreter (`%post -c /bin/bash` runs "
        "`/bin/bash -e script`), so each RUN after it is written as that shell's "
        "exact command line (`exec "
        + " ".join(sh_quote(w) for w in form)
        + " '...'`); the entrypoint's shell form keeps it too"
    )


def convert(text: str, file: str = "Dockerfile") -> Conversion:
    """Convert Dockerfile text; errors name ``file:line``."""
    return _Converter(file).run(text)


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.warnings: list[str] = []
        self.seen: set[str] = set()
        self.escape = "\\"
        self.global_words: dict[str, Word] = dict(_PLATFORM_ARGS)
        self.stages: list[_Stage] = []
        self.images: dict[str, _Stage] = {}  # COPY --from=IMAGE: the extra stages
        self.image_users: dict[str, int] = {}  # image -> the first stage that uses it
        self.line = 0
        self.names: dict[str, int] = {}  # stage names (lower case) -> index
        self.stage_count = 0
        self.notes: list[str] = []

    # -- errors and warnings -----------------------------------------------------------

    def warn(self, line: int, message: str) -> None:
        text = f"{self.file}:{line}: {message}"
        if text not in self.seen:
            self.seen.add(text)
            self.warnings.append(text)

    def error(self, message: str, line: int | None = None) -> DefError:
        return DefError(message, file=self.file, line=line or self.line)

    def placeholder(self, what: str, value: str) -> None:
        if has_placeholder(value):
            self.warn(
                self.line,
                f"{what} {value!r}: Apptainer replaces {{{{ NAME }}}} with a build "
                "argument in the whole definition before building; rename it",
            )

    # -- substitution ------------------------------------------------------------------

    def expand(
        self,
        text: str,
        stage: _Stage | None,
        *,
        shell: bool,
        what: str,
        shadowed: Collection[str] = (),
    ) -> Word:
        """``ProcessWord`` of ``text`` with the stage's variables (the global ARGs for
        FROM). ``shell``: a variable the Dockerfile does not set is left to the shell
        (ENV, ARG values); otherwise it is empty, as when the base image does not set it,
        and reported. ``shadowed``: names an earlier pair of the same instruction sets
        (``ENV A=1 B=$A``); Docker reads them from before the instruction, which the
        shell can no longer see, so when the Dockerfile did not set them they are taken
        as unset, and reported."""
        words = stage.words if stage is not None else self.global_words

        def lookup(name: str) -> Word | None:
            return words.get(name)

        def unknown(name: str, op: str, word: Word) -> Word:
            bare = op.lstrip(":")
            if shell and _SHELL_NAME.match(name) and bare in ("", "-", "+", "?"):
                return (_Var(name, op, word),)
            if _SHELL_NAME.match(name) and stage is not None:
                where = (
                    "in this stage (an ARG before the first FROM must be declared again "
                    "with ARG in the stage)"
                    if name in self.global_words and name not in _PLATFORM_ARGS
                    else "in this Dockerfile"
                )
                self.warn(
                    self.line,
                    f"{what}: ${name} is not set {where}; Docker would use the base "
                    "image's value, if it sets one; taken as unset",
                )
            if bare == "?":
                raise _LexError(f"{name}: {_flat(word) or 'is not allowed to be unset'}")
            if bare == "-":
                return word
            return ()

        def unshadow(word: Word) -> Word:
            """``word`` with each shell variable of ``shadowed`` taken as unset."""
            parts: list[_Part] = []
            for p in word:
                if not isinstance(p, _Var):
                    parts.append(p)
                    continue
                if p.name not in shadowed:
                    parts.append(_Var(p.name, p.op, unshadow(p.word)))
                    continue
                self.warn(
                    self.line,
                    f"{what}: ${p.name} is set earlier in this same instruction, but "
                    "Docker substitutes the value from before it (the base image's, if "
                    "it sets one); taken as unset",
                )
                bare = p.op.lstrip(":")
                if bare == "?":
                    raise _LexError(f"{p.name}: {_flat(p.word) or 'is not allowed to be unset'}")
                if bare == "-":
                    parts.extend(unshadow(p.word))
            return _norm(parts)

        try:
            return unshadow(_Lex(text, self.escape, lookup, unknown).process()[0])
        except _LexError as exc:
            raise self.error(f"{what}: {exc}") from None

    def static(self, word: Word, stage: _Stage, what: str) -> str:
        """A word as .def text: build arguments as ``{{ NAME }}`` (declared in the
        stage), anything the shell would compute left out with a warning; literal
        ``{{ x }}`` text is reported."""
        out = ""
        for p in word:
            if isinstance(p, str):
                self.placeholder(what, p)
                out += p
            elif isinstance(p, _Arg):
                if self.usable(p, out, stage):
                    out += "{{ " + p.name + " }}"
                else:
                    out += p.default or ""
            else:
                shown = f"${p.name}" if isinstance(p, _Var) else f"$({p.text})"
                self.warn(
                    self.line,
                    f"{what}: {shown} is only known to a shell, not here; left out",
                )
        return out

    def usable(self, arg: _Arg, before: str, stage: _Stage, quoted: bool = False) -> bool:
        """Whether ``{{ NAME }}`` can stand here: one default per stage; no ``#`` before
        it on the line (Apptainer leaves a placeholder after a ``#`` as it is,
        internal/pkg/build/args/reader.go ``commentLineRegexp``); inside double quotes, a
        default that needs no quoting. Otherwise the use is fixed to the default."""
        why = None
        if not any(build_arg_uses(before + "{{ " + arg.name + " }}")):
            why = "it follows a '#' on its line, where Apptainer does not substitute"
        elif quoted and set('"$`\\') & set(arg.default or ""):
            why = "its default needs quoting inside a double-quoted word"
        elif not stage.declare(arg):
            why = f"a second default ({arg.default!r}) in one stage; Apptainer keeps one"
        if why is not None:
            self.warn(
                self.line,
                f"ARG {arg.name}: {why}, so this use is fixed to {arg.default or ''!r}",
            )
        return why is None

    def shtext(self, text: str, stage: _Stage) -> str:
        """``.def`` text written by ``static`` (build arguments as ``{{ NAME }}``) as one
        sh word."""
        parts: list[_Part] = []
        for k, piece in enumerate(re.split(r"\{\{ (\w+) \}\}", text)):
            arg = stage.args.get(piece) if k % 2 else None
            if k % 2 and arg is not None:
                parts.append(_Arg(piece, arg.default))
            else:
                parts.append(piece if k % 2 == 0 else "{{ " + piece + " }}")
        return self.sh(_norm(parts), stage)

    def sh(self, word: Word, stage: _Stage) -> str:
        """A word as one sh word in %post/%environment; its build arguments declared."""
        parts: list[_Part] = []
        quoted = any(isinstance(p, (_Var, _Cmd)) for p in word)
        for p in word:
            if isinstance(p, _Arg) and not self.usable(p, _flat(tuple(parts)), stage, quoted):
                parts.append(p.default or "")
                continue
            parts.append(p)
        return _sh_word(_norm(parts))

    # -- the whole file ----------------------------------------------------------------

    def run(self, text: str) -> Conversion:
        try:
            instructions = _read(text)
        except _ParseError as exc:
            raise self.error(exc.message, exc.line) from None
        froms = [i for i in instructions if i.cmd == "from"]
        self.stage_count = len(froms)
        self.names = {
            i.args[2].lower(): n
            for n, i in enumerate(froms)
            if len(i.args) == 3 and i.args[1].lower() == "as"
        }
        for ins in instructions:
            self.line = ins.start
            if ins.cmd not in _KNOWN:
                raise self.error(f"unknown instruction {ins.keyword!r}")
            try:
                self.instruction(ins)
            except _ParseError as exc:
                raise self.error(exc.message) from None
        if not self.stages:
            raise self.error("no FROM instruction", 1)
        return self.finish()

    def instruction(self, ins: _Instruction) -> None:
        flags = _parse_flags(ins)
        if ins.cmd == "arg":
            self.arg(ins)
            return
        if ins.cmd == "from":
            self.from_(ins, flags)
            return
        if not self.stages:
            raise self.error(f"{ins.keyword.upper()} before the first FROM")
        stage = self.stages[-1]
        handler = getattr(self, "do_" + ins.cmd, None)
        if handler is not None:
            handler(ins, stage, flags)
            return
        what = ins.keyword.upper()
        if ins.cmd in ("user", "stopsignal", "workdir") and len(ins.args) != 1:
            raise self.error(f"{what} requires exactly one argument")
        if ins.cmd in ("expose", "volume") and not ins.args:
            raise self.error(f"{what} requires at least one argument")
        shown = ins.rest
        if ins.cmd in ("user", "expose", "volume", "stopsignal"):
            args = list(ins.args)
            if ins.cmd == "volume" and not ins.json:
                args = [a for a in args if a]
            values = [
                _with_defaults(self.expand(a, stage, shell=False, what=what)) or "" for a in args
            ]
            shown = " ".join(values)
        why, fix = _UNSUPPORTED[ins.cmd]
        self.warn(ins.start, f"{what} {shown}: {why}; {fix} (left out)")

    # -- ARG and FROM ------------------------------------------------------------------

    def arg(self, ins: _Instruction) -> None:
        if not ins.args:
            raise self.error("ARG requires at least one argument")
        stage = self.stages[-1] if self.stages else None
        values: list[tuple[str, Word]] = []
        for word in ins.args:
            key, sep, raw = word.partition("=")
            if not key:
                raise self.error("ARG names can not be blank")
            if not re.fullmatch(r"\w+", key, re.ASCII):
                raise self.error(f"ARG name {key!r} is not a valid build-argument name")
            if stage is None:  # BuildKit sets each global ARG before the next is read
                self.global_arg(key, raw if sep else None)
            else:  # in a stage, every value reads the variables before this ARG
                shadowed = {name for name, _value in values}
                value = self.stage_arg_value(stage, key, raw if sep else None, shadowed)
                values.append((key, value))
        if stage is not None:
            for key, value in values:
                self.stage_arg(stage, key, value)

    def global_arg(self, key: str, raw: str | None) -> None:
        if raw is None:
            self.global_words[key] = _PLATFORM_ARGS.get(key, (_Arg(key, None),))
            return
        value = self.expand(raw, None, shell=False, what=f"ARG {key}")
        self.global_words[key] = self.arg_word(key, value)

    def arg_word(self, key: str, value: Word) -> Word:
        """An ARG's value as a build argument when Apptainer can hold its default."""
        text = _literal(value)
        if text is None:
            if any(isinstance(p, _Arg) for p in value) and not any(
                isinstance(p, (_Var, _Cmd)) for p in value
            ):
                self.warn(
                    self.line,
                    f"ARG {key}: its default uses other build arguments, which "
                    f"--build-arg sets; --build-arg {key} itself cannot change it",
                )
            return value
        ok = list(read_arguments(f"{key}={text}")) == [(1, key, text)] and "{{" not in text
        if ok and _arg_quoted(_Arg(key, text)) is not None:
            return (_Arg(key, text),)
        self.warn(
            self.line,
            f"ARG {key}={text!r}: %arguments cannot hold this default (Apptainer trims "
            "it and reads one line), so it is fixed: --build-arg cannot change it",
        )
        return value

    def stage_arg_value(
        self, stage: _Stage, key: str, raw: str | None, shadowed: Collection[str]
    ) -> Word:
        what = f"ARG {key}"
        if raw is None:
            value = self.global_words.get(key)
            if value is None:
                value = _PLATFORM_ARGS.get(key, (_Arg(key, ""),))
            if len(value) == 1 and isinstance(value[0], _Arg) and value[0].default is None:
                value = (_Arg(key, ""),)
        else:
            value = self.expand(raw, stage, shell=True, what=what, shadowed=shadowed)
            value = self.arg_word(key, value)
            if any(isinstance(p, _Var) for p in value):
                self.warn(
                    self.line,
                    f"{what}: its default uses variables this Dockerfile does not set; it "
                    "is set by the shell in %post and --build-arg cannot change it",
                )
        return value

    def stage_arg(self, stage: _Stage, key: str, value: Word) -> None:
        what = f"ARG {key}"
        stage.arg_names.add(key)
        if key in stage.env_names:
            return  # Docker: an ENV of the same name overrides the ARG
        stage.words[key] = value
        if not _SHELL_NAME.match(key):
            self.warn(self.line, f"{what}: not a shell variable name; RUN lines do not see it")
            return
        stage.post.append(f"export {key}={self.sh(value, stage)}  # ARG {key}")

    def from_(self, ins: _Instruction, flags: dict[str, list[str]]) -> None:
        args = ins.args
        if len(args) == 3 and args[1].lower() == "as":
            name: str | None = args[2]
            assert name is not None
            if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
                raise self.error(
                    f'invalid name for build stage: "{name}", name can\'t start with a '
                    "number or contain symbols"
                )
            first = next(
                (s for s in self.stages if s.docker_name and s.docker_name.lower() == name.lower()),
                None,
            )
            if first is not None:  # dockerfile2llb: "duplicate stage name"
                raise self.error(
                    f'duplicate stage name "{name.lower()}" (stage {first.docker_name} is at '
                    f"line {first.line}): stage names must be unique"
                )
        elif len(args) != 1:
            raise self.error("FROM requires either one or three arguments")
        else:
            name = None
        here = Origin(self.file, ins.start)
        index = len(self.stages)
        value = self.expand(args[0], None, shell=False, what="FROM")
        resolved = _with_defaults(value)
        if not resolved:
            raise self.error(f"base name ({args[0]}) should not be blank")
        for platform in flags.get("platform", []):
            self.platform(platform)
        parent = next(
            (s for s in self.stages if s.docker_name and s.docker_name.lower() == resolved),
            None,
        )
        if parent is not None:
            if _literal(value) is None:
                self.warn(
                    ins.start,
                    f"FROM {args[0]}: builds on stage {parent.docker_name} with the "
                    "build arguments' defaults; --build-arg cannot choose another stage",
                )
            stage = parent.child(index, name, here, resolved)
        else:
            stage = self.new_stage(index, name, here, value, args[0])
        self.stages.append(stage)

    def new_stage(
        self, index: int, name: str | None, here: Origin, value: Word, written: str
    ) -> _Stage:
        builtin = [p for p in value if isinstance(p, _Cmd)]
        if builtin:
            raise self.error(
                f"FROM {written}: the image name uses Docker's platform ARGs, which "
                "Apptainer cannot give a header; write the image name out"
            )
        if re.search(r"(^|/)(windows|nanoserver|servercore)(/|:|$)", _flat(value)):
            self.warn(
                self.line,
                f"FROM {written}: a Windows image; Apptainer runs Linux images only",
            )
        if _literal(value) == "scratch":
            header = Header("scratch", origin=here)
            return _Stage(index, name, header, "scratch", here)
        stage = _Stage(index, name, Header("scratch", origin=here), _flat(value), here)
        stage.header = Header.docker(self.static(value, stage, "FROM"), origin=here)
        stage.image = written
        return stage

    def platform(self, text: str) -> None:
        value = self.expand(text, None, shell=False, what="FROM --platform")
        if value and all(isinstance(p, _Cmd) or p == "linux/" for p in value):
            return  # $BUILDPLATFORM/$TARGETPLATFORM: the build host's, as in Apptainer
        shown = _with_defaults(value) or text
        self.warn(
            self.line,
            f"FROM --platform={shown}: Apptainer builds every stage for one "
            "architecture (the host's, or `apptainer build --arch`); the platform is "
            "not kept",
        )

    # -- the instructions of a stage ---------------------------------------------------

    def do_env(self, ins: _Instruction, stage: _Stage, _flags: dict[str, list[str]]) -> None:
        if not ins.args:
            raise self.error("ENV requires at least one argument")
        here = Origin(self.file, ins.start)
        pairs: list[tuple[str, Word]] = []
        for k in range(0, len(ins.args), 3):
            if not ins.args[k]:
                raise self.error("ENV names can not be blank")
            key = _with_defaults(self.expand(ins.args[k], stage, shell=False, what="ENV")) or ""
            shadowed = {name for name, _value in pairs}
            what = f"ENV {key}"
            value = self.expand(ins.args[k + 1], stage, shell=True, what=what, shadowed=shadowed)
            pairs.append((key, value))
        for key, value in pairs:  # every value reads the variables before this ENV
            text = _literal(value)
            if text is not None:
                export = Export(key, text, origin=here)
                stage.env.append(export)
                line = export_line(export)
            elif len(value) == 1 and isinstance(value[0], _Arg) and stage.declare(value[0]):
                arg = stage.args[value[0].name]
                export = Export(key, arg, origin=here)
                stage.env.append(export)
                line = export_line(export)
            else:
                Export(key, "", origin=here)  # the name's check, at this line
                line = f"export {key}={self.sh(value, stage)}"
                stage.env.append(Script(line, origin=here))
            stage.post.append(line)
            stage.words[key] = value
            stage.env_names.add(key)

    def do_label(self, ins: _Instruction, stage: _Stage, _flags: dict[str, list[str]]) -> None:
        if not ins.args:
            raise self.error("LABEL requires at least one argument")
        here = Origin(self.file, ins.start)
        pairs = []
        for k in range(0, len(ins.args), 3):
            if not ins.args[k]:
                raise self.error("LABEL names can not be blank")
            key = self.expand(ins.args[k], stage, shell=False, what="LABEL")
            value = self.expand(ins.args[k + 1], stage, shell=False, what="LABEL")
            pairs.append((key, value))
        for key, value in pairs:
            name = self.static(key, stage, "LABEL")
            text = self.static(value, stage, f"LABEL {name}")
            stage.labels.pop(name, None)
            stage.labels[name] = Label(name, text, origin=here)

    def do_maintainer(self, ins: _Instruction, stage: _Stage, _flags: dict[str, list[str]]) -> None:
        if len(ins.args) != 1:
            raise self.error("MAINTAINER requires exactly one argument")
        here = Origin(self.file, ins.start)
        self.placeholder("MAINTAINER", ins.args[0])
        stage.labels.pop("maintainer", None)
        stage.labels["maintainer"] = Label("maintainer", ins.args[0], origin=here)

    def do_workdir(self, ins: _Instruction, stage: _Stage, _flags: dict[str, list[str]]) -> None:
        if len(ins.args) != 1:
            raise self.error("WORKDIR requires exactly one argument")
        value = self.expand(ins.args[0], stage, shell=False, what="WORKDIR")
        if any(isinstance(p, (_Var, _Cmd)) for p in value):
            self.warn(ins.start, "WORKDIR: a part only the shell knows is left out")
            value = tuple(p for p in value if not isinstance(p, (_Var, _Cmd)))
        stage.workdir = _join(stage.workdir, value)
        where = self.sh(stage.workdir, stage)
        stage.post.append(f"mkdir -p {where} && cd {where} || exit 1")

    def do_shell(self, ins: _Instruction, stage: _Stage, _flags: dict[str, list[str]]) -> None:
        if not ins.args:
            raise self.error("SHELL requires at least one argument")
        if not ins.json:
            raise self.error('SHELL needs the JSON form, e.g. SHELL ["/bin/bash", "-c"]')
        stage.shell = tuple(ins.args)
        _shell, why = _post_shell(ins.args)
        if why:
            self.warn(ins.start, f"SHELL {ins.rest}: {why}")

    def do_entrypoint(self, ins: _Instruction, stage: _Stage, _flags: dict[str, list[str]]) -> None:
        stage.entrypoint = list(ins.args) if ins.json else (ins.args[0] if ins.args else None)
        if not stage.cmd_set:
            stage.cmd = None  # Docker: ENTRYPOINT resets a CMD from the base image

    def do_cmd(self, ins: _Instruction, stage: _Stage, _flags: dict[str, list[str]]) -> None:
        stage.cmd = list(ins.args) if ins.json else (ins.args[0] if ins.args else None)
        stage.cmd_set = True

    # -- RUN ---------------------------------------------------------------------------

    def do_run(self, ins: _Instruction, stage: _Stage, flags: dict[str, list[str]]) -> None:
        here = Origin(self.file, ins.start)
        for mount in flags.get("mount", []):
            self.mount(mount, stage)
        for key in ("network", "security", "device"):
            for value in flags.get(key, []):
                self.warn(ins.start, f"RUN --{key}={value}: Apptainer's %post has no such option")
        if not ins.args:
            raise self.error("RUN requires at least one argument")
        if ins.json:
            run = _Run(ins.start, None, tuple(ins.args), "")
        elif ins.heredocs:
            run = self.heredoc_run(ins, stage)
        else:
            command = ins.args[0]
            joins = [
                j - ins.rest_at for j in ins.joins if ins.rest_at < j < ins.rest_at + len(command)
            ]
            body = _rebreak(command, joins)
            self.placeholder("RUN", command)
            Script(body, verbatim=True, origin=here)  # a %-line is an error here
            # a POSIX shell joins the lines again as Docker did; keep them readable
            exact = body if _POSIX_SHELL.search(stage.shell[0]) else command
            run = _Run(ins.start, stage.shell, (*stage.shell, exact), body)
        stage.post.append(run)
        stage.ran = True
        if not ins.json:
            self.pixi_hook(ins.args[0], stage)

    def heredoc_run(self, ins: _Instruction, stage: _Stage) -> _Run:
        """dispatchRun: one heredoc that is the whole command runs as a script (a file,
        with a #! line); otherwise the shell gets the command and its heredocs."""
        command = ins.args[0]
        first = _parse_heredoc(command) if len(ins.heredocs) == 1 else None
        if first is not None:
            doc = ins.heredocs[0]
            data = re.sub(r"(?m)^\t+", "", doc.content) if doc.chomp else doc.content
            if data.startswith("#!"):
                path = f"/tmp/defbuilder-run-{ins.start}"
                script = (
                    f"printf '%s' {sh_quote(data)} > {path} && chmod 0755 {path} || exit\n"
                    f'{path}; s=$?; rm -f {path}; exit "$s"'
                )
                return _Run(ins.start, None, (), script)
            text = data
        else:
            text = command + "".join("\n" + d.content + d.name for d in ins.heredocs)
        self.placeholder("RUN", text)
        if _body_ok(text.rstrip("\n")):
            return _Run(ins.start, stage.shell, (*stage.shell, text), text.rstrip("\n"))
        return _Run(ins.start, None, (*stage.shell, text), "")

    def mount(self, spec: str, stage: _Stage) -> None:
        opts: dict[str, str] = {}
        for item in spec.split(","):
            key, _, value = item.partition("=")
            opts[key.strip().lower()] = value
        kind = opts.get("type", "bind")
        if kind == "bind" and ("target" in opts or "dst" in opts or "destination" in opts):
            target = opts.get("target") or opts.get("dst") or opts.get("destination") or ""
            source = opts.get("source") or opts.get("src") or "."
            from_ = opts.get("from")
            self.warn(
                self.line,
                f"RUN --mount={spec}: Apptainer has no build mounts; the files are "
                "copied to the target with %files instead, and stay in the image",
            )
            dst = self.resolve_dest(target, stage)
            origin = Origin(self.file, self.line)
            if from_ is None:
                src = source.lstrip("/") or "."
                stage.files.append((None, FileEntry(src, dst, origin=origin)))
            else:
                stage.files.append(
                    (self.copy_source(from_, stage), FileEntry(source, dst, origin=origin))
                )
            return
        reason = {
            "cache": "the RUN writes into the image instead of a cache",
            "tmpfs": "the RUN writes into the image instead of a tmpfs",
            "secret": "the secret is not there: give it with %files or --bind",
            "ssh": "there is no SSH agent socket",
        }.get(kind, "it is not there")
        self.warn(
            self.line, f"RUN --mount={spec}: Apptainer has no build mounts; {reason} (left out)"
        )

    def pixi_hook(self, command: str, stage: _Stage) -> None:
        hook = re.search(r"pixi\s+shell-hook\b(.*?)(>>?)\s*(\S+)", command)
        if not hook:
            return
        env_m = re.search(r"(?:-e|--environment)[ =](\S+)", hook.group(1))
        env = env_m.group(1).strip("'\"") if env_m else "default"
        if "$" in env:
            value = self.expand(env, stage, shell=False, what="pixi shell-hook")
            resolved = _with_defaults(value)
            if not resolved:
                self.warn(
                    self.line,
                    f"pixi shell-hook -e {env}: the environment name is only known when "
                    "the image is built; no static activation is written (only "
                    "`apptainer run` activates it)",
                )
                return
            if _literal(value) is None:
                self.warn(
                    self.line,
                    f"pixi shell-hook -e {env}: the static activation is written for "
                    f"{resolved!r}, the build argument's default",
                )
            env = resolved
        out = hook.group(3).strip("'\"")
        workdir = _with_defaults(stage.workdir or ("/",)) or "/"
        manifest = posixpath.join(workdir, "pixi.toml")
        given = re.search(r"(?:-m|--manifest-path)[ =](\S+)", hook.group(1))
        if given:
            manifest = given.group(1)
        stage.pixi_envs.append((env, manifest, out))

    # -- COPY and ADD ------------------------------------------------------------------

    def defaults(self, text: str, stage: _Stage) -> str:
        """.def text with each build argument at its default."""
        return re.sub(
            r"\{\{ (\w+) \}\}",
            lambda m: (
                stage.args[m.group(1)].default or "" if m.group(1) in stage.args else m.group(0)
            ),
            text,
        )

    def resolve_dest(self, dest: str, stage: _Stage) -> str:
        dir_like = dest.endswith("/") or dest in (".", "./")
        if not self.defaults(dest, stage).startswith("/"):
            base = self.static(stage.workdir or ("/",), stage, "WORKDIR")
            dest = posixpath.normpath(posixpath.join(base, dest))
            if dir_like:
                dest = dest.rstrip("/") + "/"
        return dest

    def copy_source(self, value: str, stage: _Stage) -> int | str:
        """``--from``: a stage index, a stage name (any case), or an image."""
        try:
            same = _Lex(value, self.escape).process()[0] == _norm([value])
        except _LexError:
            same = False
        if not same:
            raise self.error(
                "variable expansion is not supported for --from, define a new stage "
                "with FROM using ARG from global scope as a workaround"
            )
        index = self.names.get(value.lower())
        if value.isdigit():
            index = int(value)
            if index >= self.stage_count:
                raise self.error(f"invalid stage index {index}")
        if index is not None:
            if index >= stage.index:
                raise self.error(
                    f"--from={value}: Apptainer can only copy from a stage defined before this one"
                )
            return index
        if value not in self.images:
            here = Origin(self.file, self.line)
            self.images[value] = _Stage(-1, None, Header.docker(value, origin=here), value, here)
            self.image_users[value] = stage.index
        return value

    def do_copy(self, ins: _Instruction, stage: _Stage, flags: dict[str, list[str]]) -> None:
        self.copy(ins, stage, flags)

    def do_add(self, ins: _Instruction, stage: _Stage, flags: dict[str, list[str]]) -> None:
        self.copy(ins, stage, flags)

    def copy(self, ins: _Instruction, stage: _Stage, flags: dict[str, list[str]]) -> None:
        what = ins.keyword.upper()
        if len(ins.args) < 2:
            raise self.error(f"{what} needs a source and a destination")
        here = Origin(self.file, ins.start)
        *raw_sources, raw_dest = ins.args
        if _HEREDOC.match(raw_dest) and _parse_heredoc(raw_dest):
            raise self.error(f"{what} cannot accept a heredoc as a destination")
        docs = {d.name: d for d in ins.heredocs}

        def one(key: str) -> str:
            if key not in flags:
                return ""
            word = self.expand(flags[key][-1], stage, shell=False, what=f"{what} --{key}")
            return self.static(word, stage, f"{what} --{key}")

        chmod, chown = one("chmod"), one("chown")
        checksum = one("checksum") if ins.cmd == "add" else ""
        for key in ("exclude", "parents"):
            if key in flags and flags[key] != ["false"]:
                self.warn(ins.start, f"{what} --{key}: not kept; Apptainer copies whole paths")
        if flags.get("unpack") == ["true"]:
            self.warn(ins.start, f"{what} --unpack: URL archives are downloaded, not unpacked")
        from_flag = flags.get("from", [None])[-1]
        source = self.copy_source(from_flag, stage) if from_flag is not None else None
        dest = self.static(self.expand(raw_dest, stage, shell=False, what=what), stage, what)
        multiple = len(raw_sources) > 1 or any(c in s for s in raw_sources for c in "*?[")
        dst = self.resolve_dest(dest, stage)
        if multiple and not dst.endswith("/"):
            dst += "/"
        reported = False

        def early() -> None:  # a local file is copied before %post runs
            nonlocal reported
            if stage.ran and source is None and not reported:
                reported = True
                self.warn(
                    ins.start,
                    f"{what} of a pattern after a RUN: Apptainer copies all %files before "
                    "%post runs, so these files are in place earlier than in Docker",
                )

        def fix_up(target: str) -> None:
            if chmod:
                stage.post.append(
                    f"chmod -R {self.shtext(chmod, stage)} {self.shtext(target, stage)}"
                )
            if chown:
                stage.post.append(
                    f"chown -R {self.shtext(chown, stage)} {self.shtext(target, stage)}"
                )

        for k, raw in enumerate(raw_sources):
            doc = _parse_heredoc(raw) if "<<" in raw else None
            if doc is not None and doc.name in docs:
                self.heredoc_file(docs[doc.name], stage, dst, what)
                fix_up(dst + doc.name if dst.endswith("/") else dst)
                continue
            src = self.static(self.expand(raw, stage, shell=False, what=what), stage, what)
            if not src:
                raise self.error(f"{what}: empty source path")
            contents = src.endswith("/") or posixpath.basename(src) in (".", "")
            target = dst + posixpath.basename(src) if dst.endswith("/") and not contents else dst
            if ins.cmd == "add" and source is None and re.match(r"(https?|git|ssh)://|git@", src):
                if src.startswith(("git://", "git@")) or re.search(r"\.git(#.*)?$", src):
                    self.add_git(raw, src, dst, flags.get("keep-git-dir") == ["true"], stage)
                    fix_up(dst)
                    continue
                self.add_url(src, dst, checksum, stage)
                fix_up(dst + posixpath.basename(src) if dst.endswith("/") else dst)
                continue
            if ins.cmd == "add" and source is None and _ARCHIVE.search(src):
                tmp = "/tmp/defbuilder-add/" + posixpath.basename(src)
                self.warn(
                    ins.start,
                    f"ADD {src}: Docker unpacks local archives; unpacked in %post with tar",
                )
                stage.files.append((None, FileEntry(src.lstrip("/") or ".", tmp, origin=here)))
                stage.post.append(
                    f"mkdir -p {self.shtext(dst, stage)} && tar -xf {sh_quote(tmp)} "
                    f"-C {self.shtext(dst, stage)} && rm -f {sh_quote(tmp)}"
                )
                fix_up(dst)
                continue
            if source is None:
                # the build context: a leading / is its root, not the host's
                src = src.lstrip("/") or "."
                if src.endswith("/"):
                    src = files_contents_source(src)  # what is in it, as Docker copies
            if stage.ran and not any(c in raw for c in "*?["):
                # Apptainer copies %files before %post: set it aside, put it in place here
                slot = f"{_STAGING}/{ins.start}-{k}"
                stage.files.append((source, FileEntry(src, slot, origin=here)))
                folder = self.shtext(dst, stage)
                parent = self.shtext(posixpath.dirname(target.rstrip("/")) or "/", stage)
                stage.post.append(
                    f"if [ -d {slot} ]; then mkdir -p {folder} && cp -a {slot}/. {folder}; "
                    f"else mkdir -p {parent} && cp -a {slot} {self.shtext(target, stage)}; "
                    f"fi && rm -rf {slot} || exit 1"
                )
            else:
                early()
                stage.files.append((source, FileEntry(src, dst, origin=here)))
            fix_up(target)

    def heredoc_file(self, doc: _Heredoc, stage: _Stage, dst: str, what: str) -> None:
        """``COPY <<EOF /path``: the file is written in %post, at this point."""
        target = dst + doc.name if dst.endswith("/") else dst
        data = re.sub(r"(?m)^\t+", "", doc.content) if doc.chomp else doc.content
        if doc.expand:
            try:
                word = _Lex(
                    data,
                    "\\",
                    stage.words.get,
                    lambda n, o, w: (_Var(n, o, w),) if _SHELL_NAME.match(n) else (),
                    skip_quotes=True,
                ).process()[0]
            except _LexError as exc:
                raise self.error(f"{what}: {exc}") from None
        else:
            word = (data,)
        folder = posixpath.dirname(target) or "/"
        stage.post.append(
            f"mkdir -p {self.shtext(folder, stage)} && "
            f"printf '%s' {self.sh(word, stage)} > {self.shtext(target, stage)}"
        )

    def add_git(self, raw: str, src: str, dst: str, keep: bool, stage: _Stage) -> None:
        """``ADD <git URL>#ref:subdir DIR``: the repository's files at ``ref`` (without
        ``.git`` unless ``--keep-git-dir``), cloned in %post."""
        url, _, fragment = src.partition("#")
        ref, _, sub = fragment.partition(":")
        tmp = f"/tmp/defbuilder-git-{self.line}"
        self.warn(self.line, f"ADD {raw}: cloned in %post with git; the image needs git")
        steps = [f"rm -rf {tmp}", f"git clone -q {self.shtext(url, stage)} {tmp}"]
        if ref:
            steps.append(f"git -C {tmp} checkout -q {self.shtext(ref, stage)}")
        if not keep:
            steps.append(f"rm -rf {tmp}/.git")
        folder = self.shtext(dst.rstrip("/") or "/", stage)
        copy_from = tmp + ("/" + sub.strip("/") if sub.strip("/") else "")
        steps += [f"mkdir -p {folder}", f"cp -a {self.shtext(copy_from, stage)}/. {folder}"]
        steps.append(f"rm -rf {tmp}")
        stage.post.append(" && ".join(steps) + " || exit 1")

    def add_url(self, src: str, dst: str, checksum: str, stage: _Stage) -> None:
        target = dst if not dst.endswith("/") else dst + posixpath.basename(src)
        self.warn(
            self.line,
            f"ADD {src}: downloaded in %post with curl (Apptainer %files only copies "
            "local files); the image needs curl" + ("" if checksum else "; pin a checksum"),
        )
        folder = posixpath.dirname(target) or "/"
        stage.post.append(f"mkdir -p {self.shtext(folder, stage)}")
        stage.post.append(f"curl -fsSL -o {self.shtext(target, stage)} {self.shtext(src, stage)}")
        if checksum:
            algo, _, digest = checksum.partition(":")
            if algo not in ("sha256", "sha384", "sha512") or not digest:
                raise self.error(f"ADD --checksum={checksum}: expected sha256:HEX")
            stage.post.append(
                f"echo {self.shtext(digest + '  ' + target, stage)} | {algo}sum -c - "
                ">/dev/null || exit 1"
            )

    # -- the recipe --------------------------------------------------------------------

    def finish(self) -> Conversion:
        final = self.stages[-1]
        needed: set[int | str] = set()
        todo: list[int | str] = [final.index]
        while todo:
            key = todo.pop()
            if key in needed:
                continue
            needed.add(key)
            st = self.images[key] if isinstance(key, str) else self.stages[key]
            todo += [src for src, _e in st.files if src is not None]
        used = {k for k in needed if isinstance(k, int)}
        for k in sorted(used):
            parent = self.stages[k].parent
            while parent is not None:
                used.add(parent)
                parent = self.stages[parent].parent
        for st in self.stages:
            if st.index not in used:
                self.warn(
                    st.line,
                    f"stage {st.label()} is not used by the final stage; BuildKit does "
                    "not build it either (left out)",
                )
        order: list[_Stage] = []
        for st in self.stages:
            if st.index not in needed:
                continue
            for image, user in self.image_users.items():
                if user <= st.index and image in needed and self.images[image] not in order:
                    order.append(self.images[image])
            order.append(st)
        self.name_stages(order, final)
        _link_pixi(order, self.stage_name, self.warn)
        composed = []
        for st in order:
            try:
                composed.append(self.compose(st, is_final=st is final))
            except DefError as exc:
                if exc.file is None:
                    raise DefError(exc.message, origin=st.origin) from None
                raise
        built = []
        for c, st in zip(composed, order, strict=True):
            try:  # blocks take no origin: their errors are the stage's FROM line
                built.append(c.stage)
            except DefError as exc:
                raise DefError(exc.message, origin=st.origin) from None
        recipe = Recipe(built, origin=Origin(self.file, 1))
        recipe.validate()
        source = to_python(composed, posixpath.basename(self.file), command="from-dockerfile")
        return Conversion(recipe, source, tuple(self.warnings))

    def name_stages(self, order: list[_Stage], final: _Stage) -> None:
        taken = {st.docker_name.lower() for st in order if st.docker_name}
        for st in order:
            if st.docker_name:
                st.name = st.docker_name
                continue
            if st is final:
                continue
            if st.index >= 0:
                base = f"stage-{st.index}"
            else:
                tail = st.image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
                base = "image-" + (re.sub(r"[^A-Za-z0-9_.+-]", "-", tail) or "x")
            name, n = base, 2
            while name.lower() in taken:
                name, n = f"{base}-{n}", n + 1
            taken.add(name.lower())
            st.name = name

    def stage_name(self, key: int | str | None) -> str | None:
        if key is None:
            return None
        st = self.images[key] if isinstance(key, str) else self.stages[key]
        return st.name

    def compose(self, st: _Stage, is_final: bool) -> Composed:
        """The stage's model: a base ``Stage`` plus the blocks the script keeps as calls."""
        groups: dict[str | None, list[FileEntry]] = {}
        for src, entry in st.files:
            groups.setdefault(self.stage_name(src), []).append(entry)
        shells = {r.shell for r in st.post if isinstance(r, _Run) and r.shell and r.body}
        post_shell: tuple[str, ...] = _DEFAULT_SHELL
        shell_path = None
        if len(shells) == 1:
            only = next(iter(shells))
            path, why = _post_shell(only)
            if why is None:
                post_shell, shell_path = only, path
        lines: list[str] = []
        for item in st.post:
            lines += _run_lines(item, post_shell) if isinstance(item, _Run) else [item]
        if any(e.dst and e.dst.startswith(_STAGING + "/") for _s, e in st.files):
            lines.append(f"rm -rf {_STAGING}")
        workdir = None
        if is_final and st.workdir:
            workdir = _with_defaults(st.workdir)
            if _literal(st.workdir) is None:
                self.warn(
                    st.line,
                    f"WORKDIR {workdir}: the runscript starts there with the build "
                    "arguments' defaults",
                )
        header = attrs.evolve(st.header, stage=st.name)
        base = Stage(
            header,
            arguments=tuple(st.args.values()),
            files=tuple(
                Files(entries, from_stage=from_stage, origin=st.origin)
                for from_stage, entries in groups.items()
            ),
            environment=Environment(tuple(st.env)),
            post=Script("\n".join(lines), shell=shell_path, verbatim=True, origin=st.origin),
            labels=tuple(st.labels.values()),
            origin=st.origin,
        )
        blocks: list[Block] = [
            Call(static_activation, (env, manifest, _activate_path(out)))
            for env, manifest, out in st.pixi_envs
        ]
        if is_final and (st.entrypoint is not None or st.cmd is not None):
            blocks.append(Entrypoint(st.entrypoint, cmd=st.cmd, shell=st.shell, workdir=workdir))
        return Composed(base, blocks, comment=f"FROM {st.image} (line {st.line})")


def _join(base: Word | None, path: Word) -> Word:
    """``path`` against the working directory ``base`` (Docker cleans the result)."""
    if not (_with_defaults(path) or "").startswith("/"):
        path = _norm([*(base or ("/",)), "/", *path])
    text = _literal(path)
    if text is not None:
        clean = posixpath.normpath(text)
        return (("/" + clean.lstrip("/")) if clean.startswith("//") else clean,)
    return _norm(re.sub("/+", "/", p) if isinstance(p, str) else p for p in path)


def _activate_path(hook_out: str) -> str:
    """Where the static activation goes: beside the generated entrypoint."""
    return posixpath.join(posixpath.dirname(hook_out) or "/", "activate.sh")


def _link_pixi(
    stages: list[_Stage], name_of: Callable[[int | str | None], str | None], warn: Warn
) -> None:
    """An entrypoint generated from pixi shell-hook: add a static activation file in
    that stage (``compose``), and source it in %environment where the environment
    is copied."""
    for stage in stages:
        for env, _manifest, out in stage.pixi_envs:
            activate = _activate_path(out)
            prefix_part = f".pixi/envs/{env}"
            for other in stages:
                if other is stage:
                    continue
                copies = [
                    e for f, e in other.files if name_of(f) == stage.name and prefix_part in e.src
                ]
                if copies:
                    other.files.append(
                        (stage.index, FileEntry(activate, activate, origin=stage.origin))
                    )
                    other.env.append(Script(f". {sh_quote(activate)}", origin=stage.origin))
            warn(
                stage.line,
                f"pixi shell-hook writes {out}: also wrote a static activation "
                f"file, {activate}, sourced by %environment, so apptainer exec/shell/test "
                "see the environment too",
            )
