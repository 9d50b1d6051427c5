"""HTCondor glue: a container-universe submit file and its job wrapper script.

``CondorJob`` holds every submit key a GPU job on CHTC uses; defaults are CHTC's
GPU Lab conventions (chtc.cs.wisc.edu, "Use GPUs"): one GPU and one CPU,
``+WantGPULab = true``, ``+GPUJobLength = "short"``, a minimum compute capability.
Several ``requirements`` are always joined with ``&&`` into one line: in a submit
file a later assignment replaces an earlier one, which is how the upstream example
lost its driver requirement (checked with the ``htcondor2`` bindings in the tests).
Each is put in brackets first (``bracketed``), since ``||`` binds less tightly than
``&&`` (HTCondor manual, "ClassAd Syntax", operator precedence): ``A && B || true``
is always true; a requirement with unbalanced brackets is refused.
Each field's help (``FIELD_HELP``, from the field's metadata) is what
``defbuilder condor --help`` prints and what ``CondorJob``'s doc lists.

No value can add a line or a key to the submit file. HTCondor's own rules
(``condor_submit(1)``: a line ending in a backslash continues on the next one, a
line starting with ``#`` is a comment; ``htcondor-jdl(1)``, "Macros and comments":
``$(NAME)``, ``$$(NAME)`` and ``$ENV(NAME)`` are expanded, at submit or match time; the
HTCondor manual, "ClassAd Syntax": an attribute name is letters, digits and
underscores, not starting with a digit, and in a string literal a backslash makes
the next character part of the string) give the checks:

* a value is one line: no control character (newline, carriage return, NUL...),
  no leading or trailing white space (HTCondor drops it), no trailing backslash;
* a ``--key`` name is a submit command or macro name, or ``+NAME`` / ``MY.NAME``
  with a ClassAd attribute name; the keys this class writes itself, ``queue``
  and the names HTCondor predefines (``Cluster``, ``Process``, ``DOLLAR``...)
  are refused;
* ``+ProjectName`` is written as a ClassAd string literal (``"`` and ``\\``
  escaped); it may not hold a ``$``, which HTCondor would expand (its
  ``$(DOLLAR)`` escape is itself expanded again when followed by ``(`` or ``$``);
  job names and wrapper names are plain file names; quantities and versions are
  numbers with HTCondor's units;
* ``write_job`` reads the text back with ``htcondor2.Submit`` (when the bindings
  are installed) and compares every key and the ``queue`` arguments with what
  was intended before anything is written.

Macros in a value (``$(Cluster)``, ``$(Process)``) are HTCondor's language and
stay: they expand inside that one value and cannot add a key.

The wrapper logs with ``set -x``, prints the job number and
``CUDA_VISIBLE_DEVICES``, sources the image's activation file, runs the GPU check,
then the workload, and exits with the workload's status.

>>> job = CondorJob(image="oras://ghcr.io/me/app:1", command=("python", "train.py"))
>>> dict(job.items())["requirements"]
'(GPUs_DriverVersion >= 12.0) && (OpSysMajorVer > 7)'
>>> job.submit().splitlines()[-1]
'queue 1'

``defbuilder condor`` is ``write_condor``: ``job_from`` (defaults, then the recipe's
``job`` dict, then the command line) and ``write_job`` (NAME.sub and the wrapper), or
``build_job_from`` and ``write_build`` (the build job), or both and ``write_dag``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from .errors import DefError
from .fileio import write_outputs

__all__ = [
    "FIELD_HELP",
    "RESERVED_KEYS",
    "CondorJob",
    "JobError",
    "Written",
    "bracketed",
    "check_submit",
    "classad_string",
    "job_defaults",
    "job_from",
    "options_markdown",
    "submit_text",
    "write_condor",
    "write_job",
]


DEFAULT_REQUIREMENTS = ("(GPUs_DriverVersion >= 12.0)", "(OpSysMajorVer > 7)")

# --- HTCondor's rules (see the module doc) ---------------------------------------------

#: ``--key`` names: a submit command / macro name, or a job attribute as +NAME or MY.NAME.
_KEY = re.compile(r"(?:\+|(?i:MY)\.)?[A-Za-z_][A-Za-z0-9_]*")
#: What a job name or wrapper name may be: a plain file name, never a path.
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")
#: ``request_memory`` / ``request_disk`` / ``gpus_minimum_memory``: <quantity>, a
#: number with an optional unit K/KB, M/MB, G/GB, T/TB (htcondor-jdl(1)).
_QUANTITY = re.compile(r"[0-9]+(?:\.[0-9]+)? ?(?:[KMGTkmgt][Bb]?)?")
#: ``gpus_minimum_capability`` = <version>, a floating point value such as 8.5.
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)?")
#: Names HTCondor predefines in a submit file (src/condor_utils/submit_utils.cpp,
#: SubmitMacroDefaults, and the expansion of $(DOLLAR) / $(DOLLARDOLLAR)).
_PREDEFINED = (
    *("ARCH", "Cluster", "ClusterId", "Day", "DOLLAR", "DOLLARDOLLAR", "IsLinux"),
    *("IsWindows", "Item", "ItemIndex", "JobId", "JobListId", "Month", "Node", "OPSYS"),
    *("OPSYSANDVER", "OPSYSMAJORVER", "OPSYSVER", "Process", "ProcId", "Row", "SPOOL"),
    *("Step", "SUBMIT_FILE", "SUBMIT_TIME", "TaskId", "VM_MEMORY", "VM_VCPUS", "Year"),
)


#: The submit language's conditionals (HTCondor manual, "Conditionals in the submit
#: description": if / elif / else / endif): a line starting with one is not a key.
_CONDITIONALS = ("if", "elif", "else", "endif")


class JobError(DefError):
    """A bad value for one ``CondorJob`` field; ``field`` says which."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field} {shown}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


def _bad_char(value: str) -> str | None:
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029":
            return f"U+{ord(ch):04X}"
    return None


def submit_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be one submit-file value as is, or None.

    >>> submit_value_problem("2GB\\nexecutable = /bin/rm")
    'contains a control character (U+000A); a submit-file value is one line'
    >>> submit_value_problem("(A) \\\\")
    'ends with a backslash, which continues the line in a submit file'
    """
    bad = _bad_char(value)
    if bad:
        return f"contains a control character ({bad}); a submit-file value is one line"
    if value != value.strip():
        return "starts or ends with white space, which HTCondor drops"
    if value.endswith("\\"):
        return "ends with a backslash, which continues the line in a submit file"
    return None


def classad_string(value: str) -> str:
    """``value`` as a ClassAd string literal (``"`` and ``\\`` escaped).

    >>> print(classad_string('say "hi" \\\\ o/'))
    "say \\"hi\\" \\\\ o/"
    """
    inner = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{inner}"'


def _key_id(key: str) -> str:
    """A submit key as the bindings report it: case-folded, ``+NAME`` as ``my.name``."""
    key = "MY." + key[1:] if key.startswith("+") else key
    return key.lower()


# --- field converters and validators ----------------------------------------------------

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise JobError(field, value, f"expected a string, not {type(value).__name__}")
    return value


def _check_line(field: str, value: object) -> None:
    _line(field, value)


def _line(field: str, value: object) -> str:
    text = _text(value, field)
    problem = submit_value_problem(text)
    if problem:
        raise JobError(field, text, problem)
    return text


def _validate(check: Callable[[str, Any], None]) -> _Validator:
    def validator(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        check(attribute.name, value)

    return validator


def _check_image(field: str, value: object) -> None:
    image = _line(field, value)
    if any(ch.isspace() for ch in image):
        raise JobError(field, image, "contains white space")
    if not (image.startswith(("oras://", "osdf:///", "docker://")) or image.endswith(".sif")):
        raise JobError(field, image, "use oras://..., osdf:///..., docker://... or a .sif path")


def _check_plain(field: str, value: object) -> None:
    text = _text(value, field)
    if not _PLAIN.fullmatch(text):
        raise JobError(
            field,
            text,
            "must be a plain file name (letters, digits, then also . _ + -), not a path",
        )


def _check_classad_string(field: str, value: object) -> None:
    if value is not None and "$" in _line(field, value):
        raise JobError(field, value, "contains $, which HTCondor would expand as a macro")


def _check_quantity(field: str, value: object) -> None:
    if value is None:
        return
    text = _line(field, value)
    if not _QUANTITY.fullmatch(text):
        raise JobError(field, text, "expected a number with an optional unit K, M, G or T")
    if float(re.sub(r"[^0-9.]", "", text)) == 0:
        raise JobError(field, text, "must be more than 0")


def _check_version(field: str, value: object) -> None:
    if value is None:
        return
    text = _line(field, value)
    if not _VERSION.fullmatch(text):
        raise JobError(field, text, "expected a version number such as 8.0")


def _check_int(minimum: int) -> Callable[[str, object], None]:
    def check(field: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise JobError(field, value, f"expected a whole number, not {type(value).__name__}")
        if value < minimum:
            raise JobError(field, value, f"must be at least {minimum}")

    return check


def _check_bool(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise JobError(field, value, "expected true or false")


def _check_choice(*choices: str) -> Callable[[str, object], None]:
    def check(field: str, value: object) -> None:
        if value is not None and value not in choices:
            raise JobError(field, value, f"expected {', '.join(choices)}")

    return check


def _check_words(field: str, value: tuple[str, ...]) -> None:
    for word in value:
        bad = "\0" in word or _bad_char(word.replace("\n", "").replace("\t", "").replace("\r", ""))
        if bad:
            raise JobError(field, word, "contains a NUL or another control character")


def _check_activate(field: str, value: object) -> None:
    if value is None:
        return
    text = _text(value, field)
    _check_words(field, (text,))


def _check_files(field: str, value: tuple[str, ...]) -> None:
    for name in value:
        _line(field, name)
        if not name or "," in name:
            raise JobError(field, name, "a file name here can be neither empty nor contain ','")


def _paren_depths(expr: str) -> list[int] | None:
    """The bracket depth after each character of ``expr`` (brackets inside ClassAd
    string literals do not count), or None when the brackets are unbalanced."""
    depths: list[int] = []
    depth, quoted, escaped = 0, False, False
    for ch in expr:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return None
        depths.append(depth)
    return depths if depth == 0 and not quoted else None


def bracketed(expr: str) -> str:
    """``expr`` in brackets, so that joining it with ``&&`` cannot change what it
    means (``(A) || true`` would otherwise make the whole requirement true); an
    expression already in one pair of brackets is kept as it is.

    >>> bracketed("(A) || true"), bracketed("(OpSysMajorVer > 7)")
    ('((A) || true)', '(OpSysMajorVer > 7)')
    """
    depths = _paren_depths(expr)
    if depths and expr.startswith("(") and 0 not in depths[:-1]:
        return expr
    return f"({expr})"


def _check_requirements(field: str, value: tuple[str, ...]) -> None:
    for req in value:
        if not _line(field, req):
            raise JobError(field, req, "an empty requirement")
        if _paren_depths(req) is None:
            raise JobError(
                field,
                req,
                "unbalanced brackets or quotes: each requirement must be a whole "
                "ClassAd expression (they are joined with &&)",
            )


def _check_items(field: str, value: object) -> None:
    if value is None:
        return
    path = _line(field, value)
    if any(ch.isspace() or ch in ",$" for ch in path):
        raise JobError(field, path, "a file name here can hold no white space, ',' or '$'")


def _check_extra(field: str, value: tuple[tuple[str, str], ...]) -> None:
    seen: set[str] = set()
    for key, val in value:
        check_key(key)
        if _key_id(key) in seen:  # a later line would replace the earlier one
            raise JobError("key", key, "given twice (keys are case-insensitive, +A is MY.A)")
        seen.add(_key_id(key))
        _line(key, val)


def check_key(key: str) -> None:
    """Refuse a ``--key`` name that is not a plain submit key, or one that is reserved."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise JobError(
            "key",
            key,
            "expected a submit command or macro name (letters, digits, _), or +NAME / "
            "MY.NAME for a job attribute",
        )
    if _key_id(key) in _RESERVED_IDS:
        raise JobError(
            "key",
            key,
            "is reserved: defbuilder writes it from its own option, or HTCondor defines "
            "it (queue, executable, Cluster, Process, DOLLAR...), or it starts a "
            "conditional (if, elif, else, endif)",
        )


def _words(value: object) -> tuple[str, ...]:
    """A command: a list of words, or one string split like the shell would."""
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError:
            return (value,)
    if isinstance(value, list | tuple):
        words = tuple(v if isinstance(v, str) else str(v) for v in value)
        return () if words == ("",) else words
    return (str(value),)


def _files(value: object) -> tuple[str, ...]:
    """Names as a list, each item (or one string) comma-separated like HTCondor's lists."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        text = item if isinstance(item, str) else str(item)
        out += [v.strip(" \t") for v in text.split(",") if v.strip(" \t")]
    return tuple(out)


def _requirements(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(v if isinstance(v, str) else str(v) for v in value)
    return (str(value),)


def _extra(value: object) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()
    if isinstance(value, Mapping):
        items: Iterable[object] = value.items()
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise JobError("extra", value, "expected a dict of submit keys")
    out: list[tuple[str, str]] = []
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise JobError("extra", item, "expected (KEY, VALUE) pairs or a dict")
        key, val = item
        out.append((str(key), val if isinstance(val, str) else str(val)))
    return tuple(out)


def _optional_str(value: object) -> object:
    return None if value == "" else value


def _field(
    default: Any = attrs.NOTHING,
    *,
    help: str,
    check: Callable[[str, Any], None] | None = None,
    converter: Callable[[Any], Any] | None = None,
    metavar: str = "VALUE",
    example: str | None = None,
    option: str | None = None,
) -> Any:
    """A CondorJob field with its help (``metadata``), checked by HTCondor's rules."""
    return attrs.field(
        default=default,
        converter=converter,
        validator=_validate(check) if check else None,
        metadata={"help": help, "metavar": metavar, "example": example, "option": option},
    )


# --- the job -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CondorJob:
    """A container-universe GPU job (see the module doc); every field is a submit key."""

    image: str = _field(
        help="the container image the job runs in: oras://REGISTRY/NAME:TAG, "
        "osdf:///PATH (what `defbuilder push --staging` prints), docker://NAME:TAG, "
        "or a local .sif path (sent with the job)",
        check=_check_image,
        metavar="IMAGE",
        example="osdf:///chtc/staging/USER/app-1a2b3c4d.sif",
    )
    name: str = _field(
        "job",
        help="job name: the submit file is NAME.sub and the logs "
        "NAME_$(Cluster)_$(Process).log/.out/.err; a plain file name",
        check=_check_plain,
        metavar="NAME",
        example="train",
    )
    executable: str = _field(
        attrs.Factory(lambda self: f"{self.name}.sh", takes_self=True),
        help="file name of the job wrapper, written beside NAME.sub (by default NAME.sh, "
        "so that two jobs in one directory keep their own wrappers); a plain file name",
        check=_check_plain,
        metavar="FILE",
        example="train.sh",
    )
    command: tuple[str, ...] = _field(
        (),
        help="the workload the wrapper runs, one word per use (repeatable); without it, "
        "the job arguments after the job number",
        check=_check_words,
        converter=_words,
        metavar="WORD",
        example="--command python --command train.py",
    )
    activate: str | None = _field(
        "/app/activate.sh",
        help="file in the image the wrapper sources before the workload; '' for none",
        check=_check_activate,
        converter=_optional_str,
        metavar="PATH",
        example="/opt/env/activate.sh",
    )
    gpu_check: tuple[str, ...] = _field(
        ("python", "/app/gpu_check.py", "--require-gpu"),
        help="the GPU check run before the workload, one word per use (repeatable); a "
        "failed check ends the job with its exit status; '' for none",
        check=_check_words,
        converter=_words,
        metavar="WORD",
        example="--gpu-check nvidia-smi",
    )
    arguments: str = _field(
        "$(Cluster).$(Process)",
        help="the job's arguments (HTCondor's `arguments` syntax); the wrapper takes the "
        "first as the job number",
        check=_check_line,
        metavar="ARGS",
        example="'$(Cluster).$(Process) --epochs 3'",
    )
    request_cpus: int = _field(1, help="CPU cores", check=_check_int(1), metavar="N", example="4")
    request_gpus: int = _field(
        1, help="GPUs (a GPU job has at least one)", check=_check_int(1), metavar="N", example="2"
    )
    request_memory: str = _field(
        "2GB",
        help="memory: a number with an optional unit K/KB, M/MB, G/GB or T/TB (powers of "
        "1024); no unit means MiB",
        check=_check_quantity,
        metavar="QUANTITY",
        example="40GB",
    )
    request_disk: str = _field(
        "7GB",
        help="scratch disk: a number with an optional unit K/KB, M/MB, G/GB or T/TB; no "
        "unit means KiB",
        check=_check_quantity,
        metavar="QUANTITY",
        example="30GB",
    )
    gpus_minimum_capability: str | None = _field(
        "5.0",
        help="minimum CUDA compute capability of the GPU, a version number; '' for none",
        check=_check_version,
        converter=_optional_str,
        metavar="VERSION",
        example="8.0",
    )
    gpus_minimum_memory: str | None = _field(
        None,
        help="minimum GPU memory: a number with an optional unit K/M/G/T; no unit means MiB",
        check=_check_quantity,
        converter=_optional_str,
        metavar="QUANTITY",
        example="20GB",
    )
    requirements: tuple[str, ...] = _field(
        DEFAULT_REQUIREMENTS,
        help="a ClassAd expression the machine must satisfy (repeatable); each is added "
        "to the recipe's or the default requirements, put in brackets, and all are "
        "joined with &&",
        check=_check_requirements,
        converter=_requirements,
        metavar="EXPR",
        example="'(HasCHTCStaging == true)'",
    )
    want_gpu_lab: bool = _field(
        True,
        help="+WantGPULab: the job may run on CHTC's shared GPU Lab machines",
        check=_check_bool,
    )
    gpu_job_length: str | None = _field(
        "short",
        help="+GPUJobLength on CHTC's GPU Lab: short, medium or long",
        check=_check_choice("short", "medium", "long"),
        converter=_optional_str,
        metavar="LENGTH",
        example="medium",
    )
    job_duration_category: str | None = _field(
        None,
        help="+JobDurationCategory on CHTC: Short, Medium or Long",
        check=_check_choice("Short", "Medium", "Long"),
        converter=_optional_str,
        metavar="CATEGORY",
        example="Medium",
    )
    project_name: str | None = _field(
        None,
        help="+ProjectName, text without $ (written as a quoted ClassAd string)",
        check=_check_classad_string,
        converter=_optional_str,
        metavar="TEXT",
        example="DSI",
    )
    transfer_input_files: tuple[str, ...] = _field(
        (),
        help="files and directories sent with the job (repeatable, or comma-separated; "
        "a name cannot contain a comma)",
        check=_check_files,
        converter=_files,
        metavar="PATH",
        example="data.tar.gz",
    )
    transfer_output_files: tuple[str, ...] = _field(
        (),
        help="files the job sends back (repeatable, or comma-separated); default: every "
        "new file in the job's directory",
        check=_check_files,
        converter=_files,
        metavar="PATH",
        example="model.pt",
    )
    queue: int = _field(
        1, help="how many jobs: `queue N`", check=_check_int(1), metavar="N", example="10"
    )
    items_file: str | None = _field(
        None,
        option="--items",
        help="a file with one item per line: one job per line (`queue item from FILE`), "
        "the line added to the job's arguments as $(item); instead of --queue",
        check=_check_items,
        converter=_optional_str,
        metavar="FILE",
        example="items.txt",
    )
    extra: tuple[tuple[str, str], ...] = _field(
        (),
        help="other submit keys, as KEY=VALUE (--key); reserved keys are refused",
        check=_check_extra,
        converter=_extra,
        metavar="KEY=VALUE",
        example="'+AccountingGroup=\"lab\"'",
    )

    def items(self) -> list[tuple[str, str]]:
        """Submit keys and values, in file order (``queue`` excluded)."""
        logs = f"{self.name}_$(Cluster)_$(Process)"
        out: list[tuple[str, str]] = [
            ("universe", "container"),
            ("container_image", self.image),
            ("executable", self.executable),
            ("arguments", f"{self.arguments} $(item)" if self.items_file else self.arguments),
            ("log", f"{logs}.log"),
            ("output", f"{logs}.out"),
            ("error", f"{logs}.err"),
            ("should_transfer_files", "YES"),
            ("when_to_transfer_output", "ON_EXIT"),
        ]
        if self.transfer_input_files:
            out.append(("transfer_input_files", ", ".join(self.transfer_input_files)))
        if self.transfer_output_files:
            out.append(("transfer_output_files", ", ".join(self.transfer_output_files)))
        if self.requirements:
            out.append(("requirements", " && ".join(map(bracketed, self.requirements))))
        out += [
            ("request_cpus", str(self.request_cpus)),
            ("request_gpus", str(self.request_gpus)),
            ("request_memory", self.request_memory),
            ("request_disk", self.request_disk),
        ]
        if self.gpus_minimum_capability:
            out.append(("gpus_minimum_capability", self.gpus_minimum_capability))
        if self.gpus_minimum_memory:
            out.append(("gpus_minimum_memory", self.gpus_minimum_memory))
        if self.want_gpu_lab:
            out.append(("+WantGPULab", "true"))
        if self.gpu_job_length:
            out.append(("+GPUJobLength", classad_string(self.gpu_job_length)))
        if self.job_duration_category:
            out.append(("+JobDurationCategory", classad_string(self.job_duration_category)))
        if self.project_name:
            out.append(("+ProjectName", classad_string(self.project_name)))
        out += list(self.extra)
        return out

    def __attrs_post_init__(self) -> None:
        if self.items_file is not None and self.queue != 1:
            raise JobError("queue", self.queue, "one job per line of items: not with --items")

    def queue_args(self) -> str:
        """What follows ``queue`` on the last line: ``N``, or ``item from FILE``."""
        return f"item from {self.items_file}" if self.items_file else str(self.queue)

    def submit(self) -> str:
        """The submit file's text."""
        return submit_text(self.name, self.items(), self.queue_args())

    def wrapper(self) -> str:
        """The job's executable: a POSIX sh wrapper (see the module doc)."""
        from .templating import render_template

        return render_template(
            "condor_wrapper.sh.j2",
            executable=self.executable,
            activate=self.activate,
            gpu_check=self.gpu_check,
            command=self.command,
        )


#: Each CondorJob field's help, from its metadata: the CLI options and the docs use it.
FIELD_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in attrs.fields(CondorJob)}

#: Keys ``--key`` may not set (case-insensitive): those CondorJob writes from its own
#: fields, ``queue`` and the names HTCondor predefines in a submit file.
RESERVED_KEYS: tuple[str, ...] = (
    *(k for k, _ in CondorJob(image="x.sif", gpus_minimum_memory="1", project_name="x").items()),
    "transfer_input_files",
    "transfer_output_files",
    "+JobDurationCategory",
    "queue",
    *_CONDITIONALS,
    *_PREDEFINED,
)
_RESERVED_IDS = frozenset(_key_id(k) for k in RESERVED_KEYS)


def option_default(field: attrs.Attribute[Any]) -> str:
    """A field's default as a user would type it ("none" when unset)."""
    default = field.default
    if default is attrs.NOTHING:
        return "none, required"
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return "NAME.sh"
    if isinstance(default, bool):
        return "true" if default else "false"
    if default is None or default == ():
        return "none"
    if isinstance(default, tuple):
        from .render import sh_quote

        return " ".join(sh_quote(str(v)) for v in default)
    return str(default)


def option_name(field: attrs.Attribute[Any]) -> str:
    """A field's ``defbuilder condor`` option: ``--`` and its name with ``-`` for ``_``."""
    if field.name == "extra":
        return "--key"
    return str(field.metadata.get("option") or "--" + field.name.replace("_", "-"))


def option_help(field: attrs.Attribute[Any]) -> str:
    """The ``--help`` text of a field's option: what it is, the default, an example."""
    text = f"{field.metadata['help']} (default: {option_default(field)}"
    example = field.metadata.get("example")
    if example:
        opt = option_name(field)
        text += f"; e.g. {example if example.startswith('--') else f'{opt} {example}'}"
    return text + ")"


def options_markdown() -> str:
    """The table of ``condor`` options in docs/chtc.md (a test keeps them equal)."""
    rows = ["| option | submit key / use | default |", "| --- | --- | --- |"]
    for field in attrs.fields(CondorJob):
        opt = "`--key KEY=VALUE`" if field.name == "extra" else f"`{option_name(field)}`"
        help_ = field.metadata["help"].replace("|", "\\|")
        default = option_default(field).replace("|", "\\|")
        default = default if default.startswith("none") else f"`{default}`"
        rows.append(f"| {opt} | {help_} | {default} |")
    return "\n".join(rows) + "\n"


CondorJob.__doc__ = (CondorJob.__doc__ or "") + (
    "\n\nFields (and their ``defbuilder condor`` options):\n\n"
    + "\n".join(
        f"* ``{f.name}`` (``{option_name(f)}``): {option_help(f)}" for f in attrs.fields(CondorJob)
    )
    + "\n"
)


# --- the submit file, read back ---------------------------------------------------------


def submit_text(name: str, items: Sequence[tuple[str, str]], queue_args: str) -> str:
    """A submit file: a comment naming it, ``key = value`` lines, then ``queue``."""
    lines = [
        f"# {name}.sub, written by defbuilder: condor_submit {name}.sub",
        f"# (interactive: condor_submit -interactive {name}.sub)",
    ]
    width = max(len(k) for k, _ in items)
    lines += [f"{k:<{width}} = {v}".rstrip() for k, v in items]
    lines.append(f"queue {queue_args}".rstrip())
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside (HTCondor's C++ code writes there)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_submit(
    text: str, items: Sequence[tuple[str, str]], queue_args: str, *, where: str
) -> None:
    """Read ``text`` back with ``htcondor2.Submit``; refuse it unless it holds exactly
    ``items`` (key by key, as the bindings name keys) and ``queue queue_args``.

    Without the bindings installed there is nothing to compare with: it returns.
    """
    try:
        import htcondor2  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the test extra installs htcondor
        return
    try:
        with _quiet_stderr():  # the bindings log parse errors to fd 2 themselves
            sub = htcondor2.Submit(text)
            got = {_key_id(k): v for k, v in sub.items()}
            qargs = sub.getQArgs()
    except Exception as exc:  # the bindings raise ValueError/HTCondorException
        raise DefError(f"{where}: HTCondor cannot read the submit file: {exc}") from None
    want = {_key_id(k): v for k, v in items}
    for key in sorted(want.keys() | got.keys()):
        if want.get(key) != got.get(key):
            raise DefError(
                f"{where}: the submit file would set {key} to {got.get(key)!r}, "
                f"not {want.get(key)!r}; nothing written"
            )
    if qargs != queue_args:
        raise DefError(f"{where}: the submit file would queue {qargs!r}, not {queue_args!r}")


# --- from the recipe and the command line -------------------------------------------------


def job_defaults(recipe_path: str) -> dict[str, Any]:
    """A recipe module's optional ``job`` mapping: defaults for ``defbuilder condor``.

    A ``.def`` (or any file that is not a ``.py`` recipe script) has none. Its keys
    must be ``CondorJob`` fields (a misspelt one is refused with its line).
    """
    if not recipe_path.endswith(".py"):
        return {}
    from .loader import check_keys, load_module

    job = getattr(load_module(recipe_path), "job", None)
    if job is None:
        return {}
    if not isinstance(job, dict):
        raise DefError("`job` must be a dict of CondorJob fields", file=recipe_path)
    check_keys(recipe_path, "job", job, [f.name for f in attrs.fields(CondorJob)])
    return dict(job)


def _recipe_line(recipe_path: str, key: str) -> int | None:
    from . import loader

    finder = getattr(loader, "_key_line", None)
    return finder(recipe_path, "job", key) if finder else None


def _option(field: str) -> str:
    names = attrs.fields_dict(CondorJob)
    return option_name(names[field]) if field in names else "--key"


def job_from(
    recipe_path: str,
    options: Mapping[str, Any] | None = None,
    *,
    default_requirements: bool = True,
    keys: Iterable[str] = (),
) -> CondorJob:
    """The job ``defbuilder condor`` writes: layered defaults, recipe, command line.

    * CHTC's defaults (``CondorJob``'s), then the recipe's ``job`` dict
      (``job_defaults``), then ``options`` (field name -> value; ``None`` is unset);
    * ``options["requirements"]`` are *added* to the recipe's (or the default)
      requirements; with ``default_requirements=False`` they are the only ones;
    * ``keys``: extra submit keys as ``KEY=VALUE`` (``--key``); they replace the
      recipe's ``extra``.

    A bad value from the command line is reported with its option; one from the
    recipe's ``job`` dict with the recipe's file and line.
    """
    defaults = job_defaults(recipe_path)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    fields = {**defaults, **given}
    requirements = tuple(given.get("requirements") or ())
    if not default_requirements:
        fields["requirements"] = requirements
    elif requirements:
        base = defaults.get("requirements", DEFAULT_REQUIREMENTS)
        fields["requirements"] = (*_requirements(base), *requirements)
    if "image" not in fields:
        raise DefError("give the container image with --image (oras://..., osdf:///... or a .sif)")
    extra: dict[str, str] = {}
    for item in keys:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise DefError(f"--key {item!r}: expected KEY=VALUE")
        try:
            check_key(k.strip())
        except JobError as exc:
            raise DefError(f"--key {exc.value!r}: {exc.reason}") from None
        extra[k.strip()] = v.strip()
    if extra:
        fields["extra"] = extra
        given["extra"] = extra
    try:
        return CondorJob(**fields)
    except JobError as exc:
        raise _located(exc, given, defaults, requirements, recipe_path) from None
    except TypeError as exc:
        raise DefError(f"bad job settings: {exc}", file=recipe_path) from None


def _located(
    exc: JobError,
    given: Mapping[str, Any],
    defaults: Mapping[str, Any],
    cli_requirements: tuple[str, ...],
    recipe_path: str,
) -> DefError:
    """``exc`` told where its value came from: an option, or the recipe's ``job`` dict."""
    names = attrs.fields_dict(CondorJob)
    field = exc.field if exc.field in names else "extra"
    shown = repr(exc.value) if len(repr(exc.value)) <= 80 else repr(exc.value)[:77] + "..."
    if field == "extra" and exc.field != "key":
        shown = f"{exc.field}={shown}"  # the value of one extra key
    if field == "requirements":
        from_cli = exc.value in cli_requirements
    else:
        from_cli = field in given or field not in defaults
    if from_cli:
        return DefError(f"{_option(field)} {shown}: {exc.reason}")
    return DefError(
        f"job[{field!r}] {shown}: {exc.reason}",
        file=recipe_path,
        line=_recipe_line(recipe_path, field),
    )


def write_job(job: CondorJob, directory: str) -> tuple[str, str]:
    """Write ``NAME.sub`` and the executable wrapper into ``directory`` (made if missing).

    The submit file is first read back with the bindings (``check_submit``); both
    files are then written by ``fileio.write_outputs`` (atomically where the paths
    are regular files; the wrapper is executable). Returns their paths.
    """
    sub = os.path.join(directory, f"{job.name}.sub")
    wrapper = os.path.join(directory, job.executable)
    if os.path.basename(sub) == job.executable:
        raise DefError(f"--executable {job.executable!r}: that is the submit file's name")
    text = job.submit()
    check_submit(text, job.items(), job.queue_args(), where=sub)
    script = job.wrapper()
    _check_wrapper_unshared(wrapper, script, sub)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise DefError(f"cannot make the directory: {exc.strerror}", file=directory) from None
    write_outputs([(sub, text), (wrapper, script)], executable=[wrapper])
    return sub, wrapper


_EXECUTABLE_LINE = re.compile(r"^[ \t]*executable[ \t]*=[ \t]*(.*?)[ \t]*$", re.I | re.M)


def _check_wrapper_unshared(wrapper: str, script: str, sub: str) -> None:
    """Refuse to change a wrapper that another submit file beside ``sub`` runs: that
    job would run this job's workload. (Submit keys are case-insensitive: HTCondor
    manual, "condor_submit", ``executable = <pathname>``.)"""
    try:
        with open(wrapper, encoding="utf-8", errors="replace") as fh:
            if fh.read() == script:
                return  # unchanged: sharing it changes nothing
    except OSError:
        return  # not there (or not readable: write_outputs reports it)
    directory, name = os.path.split(wrapper)
    for other in sorted(os.listdir(directory or ".")):
        path = os.path.join(directory, other)
        if not other.endswith(".sub") or os.path.abspath(path) == os.path.abspath(sub):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                names = _EXECUTABLE_LINE.findall(fh.read())
        except OSError:
            continue
        if name in names:
            raise DefError(
                f"{wrapper} is the wrapper {path} runs, with another workload: writing "
                "this job's would change that job; give this job its own --executable "
                "(the default is NAME.sh)",
            )


# --- build jobs and the build -> GPU check -> run DAG --------------------------------------

#: CHTC's resources for a build job (CHTC/templates-GPUs,
#: containers/pixi/build_apptainer_container.sub): 2 CPUs, 6 GB memory, 32 GB disk.
BUILD_RESOURCES = {"request_cpus": 2, "request_memory": "6GB", "request_disk": "32GB"}
#: GPU check exit codes on which the DAG stops (recipes/hello_pytorch/gpu_check.py:
#: 1 PyTorch missing or broken, 2 usage error, 3 no GPU with --require-gpu,
#: 4 numerical mismatch); any other failure (5, an unusable GPU on that machine, an
#: eviction) is retried, on another machine.
GPU_CHECK_DEFINITIVE = (1, 2, 3, 4)
#: What the GPUCHECK POST script exits with for a definitive failure (ABORT-DAG-ON).
ABORT_CODE = 10
#: What the BUILD PRE script exits with when the image is already staged (PRE_SKIP).
SKIP_CODE = 99
#: GPUCHECK retries after a transient failure.
GPU_CHECK_RETRIES = 2

#: Characters a path may hold where HTCondor lists files (``transfer_input_files``,
#: ``transfer_output_remaps``) or expands macros: no white space, , ; = $ " or #.
_SUBMIT_PATH = re.compile(r"[A-Za-z0-9._/+@:~%-]+")


def _submit_path(what: str, path: str) -> str:
    if not _SUBMIT_PATH.fullmatch(path):
        raise DefError(
            f"{what} {path!r}: a path in a submit file here can only hold letters, digits "
            "and . _ / + @ : ~ % - (HTCondor splits file lists at , ; = and white space, "
            "and expands $)"
        )
    return path


@attrs.frozen(kw_only=True)
class BuildJob:
    """A CHTC build job (``+IsBuildJob = true``) that builds, tests and stages one image.

    ``inputs`` (``images.build_inputs``) names the image by its inputs; the rendered
    .def and every local ``%files`` source are sent with the job, at their paths
    relative to the recipe (``initialdir`` is the recipe's directory and
    ``preserve_relative_paths = true``, htcondor-jdl(1)), so the .def finds them
    where ``apptainer build`` run beside the recipe would. The wrapper
    (``condor_build.sh.j2``) builds, runs ``apptainer test``, and either moves the
    image into ``staging`` (needs ``HasCHTCStaging``; an existing image of that name
    is kept: it was built from the same inputs) or leaves it to be sent back into
    ``directory``. ``NAME-image.txt`` comes back with the image's URL or name.
    """

    name: str = attrs.field(validator=_validate(_check_plain))
    inputs: Any  # images.BuildInputs (kept out of this module's imports)
    directory: str
    staging: str | None = None
    url: str | None = None
    request_cpus: int = attrs.field(default=2, validator=_validate(_check_int(1)))
    request_memory: str = attrs.field(default="6GB", validator=_validate(_check_quantity))
    request_disk: str = attrs.field(default="32GB", validator=_validate(_check_quantity))

    def __attrs_post_init__(self) -> None:
        for what, path in (("-o", self.directory), ("the recipe's directory", self.inputs.base)):
            if not os.path.isabs(path):
                raise DefError(f"{what} {path!r}: expected an absolute path")
            _submit_path(what, path)
        if self.staging is not None:
            _submit_path("--staging", self.staging)
        self.sources()

    @property
    def image(self) -> str:
        return str(self.inputs.name)

    @property
    def files(self) -> dict[str, str]:
        """Role -> file name in ``directory``."""
        n = self.name
        return {
            "def": f"{n}.def",
            "submit": f"{n}-build.sub",
            "wrapper": f"{n}-build.sh",
            "interactive": f"{n}-build-interactive.sub",
            "result": f"{n}-image.txt",
        }

    def path(self, role: str) -> str:
        return os.path.join(self.directory, self.files[role])

    def sources(self) -> list[str]:
        """The ``%files`` sources the job takes along, relative to the recipe."""
        out = []
        for item in self.inputs.top_level():
            name = item.name
            if os.path.isabs(name) or name == ".." or name.startswith("../"):
                raise DefError(
                    f"%files source {name!r} is outside the recipe's directory: a build job "
                    "can only take files from the recipe's directory along"
                )
            out.append(_submit_path("%files source", name))
        return out

    def items(self, *, interactive: bool = False) -> list[tuple[str, str]]:
        """Submit keys of the build job (or of its interactive variant)."""
        logs = os.path.join(self.directory, f"{self.name}-build_$(Cluster)")
        inputs = [self.path("def"), *self.sources()]
        if interactive:
            # CHTC: "interactive jobs require an executable" (its build.sub uses hostname);
            # the wrapper comes along to be run by hand: sh NAME-build.sh
            inputs.insert(1, self.path("wrapper"))
        out: list[tuple[str, str]] = [
            ("universe", "vanilla"),
            ("executable", "/usr/bin/hostname" if interactive else self.path("wrapper")),
            ("initialdir", self.inputs.base),
            ("log", f"{logs}.log"),
        ]
        if not interactive:
            out += [("output", f"{logs}.out"), ("error", f"{logs}.err")]
        out += [
            ("should_transfer_files", "YES"),
            ("when_to_transfer_output", "ON_EXIT"),
            ("preserve_relative_paths", "true"),
            ("transfer_input_files", ", ".join(inputs)),
        ]
        if not interactive:
            back = [self.files["result"]] if self.staging else [self.image, self.files["result"]]
            out.append(("transfer_output_files", ", ".join(back)))
            remaps = "; ".join(f"{f} = {os.path.join(self.directory, f)}" for f in back)
            out.append(("transfer_output_remaps", f'"{remaps}"'))
        if self.staging:
            out.append(("requirements", "(HasCHTCStaging == true)"))
        out += [
            ("+IsBuildJob", "true"),
            ("request_cpus", str(self.request_cpus)),
            ("request_memory", self.request_memory),
            ("request_disk", self.request_disk),
        ]
        return out

    def submit(self, *, interactive: bool = False) -> str:
        role = "interactive" if interactive else "submit"
        return submit_text(
            self.files[role][: -len(".sub")], self.items(interactive=interactive), "1"
        )

    def wrapper(self) -> str:
        from .templating import render_template

        return render_template(
            "condor_build.sh.j2",
            image=self.image,
            definition=self.files["def"],
            result=self.files["result"],
            staging=self.staging,
            url=self.url,
            build_args=[w for a in self.inputs.build_args for w in ("--build-arg", a)],
        )

    def outputs(self) -> list[tuple[str, str]]:
        """``(path, text)`` of every file the build job needs, each submit file read
        back with the bindings first."""
        for interactive in (False, True):
            role = "interactive" if interactive else "submit"
            check_submit(
                self.submit(interactive=interactive),
                self.items(interactive=interactive),
                "1",
                where=self.path(role),
            )
        return [
            (self.path("def"), self.inputs.def_text),
            (self.path("submit"), self.submit()),
            (self.path("wrapper"), self.wrapper()),
            (self.path("interactive"), self.submit(interactive=True)),
        ]


def _make_directory(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise DefError(f"cannot make the directory: {exc.strerror}", file=directory) from None


def _distinct(paths: Iterable[str]) -> None:
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise DefError(f"two of the files to write are both {path}: rename the job")
        seen.add(path)


def write_build(build: BuildJob) -> list[str]:
    """Write the build job's files (``BuildJob.outputs``) into its directory."""
    outputs = build.outputs()
    _distinct(p for p, _ in outputs)
    _make_directory(build.directory)
    write_outputs(outputs, executable=[build.path("wrapper")])
    return [p for p, _ in outputs]


def gpu_check_job(job: CondorJob, image: str) -> CondorJob:
    """The GPUCHECK node's job: ``job``'s GPU check with ``--require-gpu --json`` as
    the workload, on one GPU, in ``image``; its JSON is the last line of its output."""
    if not job.gpu_check:
        raise DefError("--dag runs the image's GPU check: give it with --gpu-check")
    check = list(job.gpu_check)
    check += [flag for flag in ("--require-gpu", "--json") if flag not in check]
    return attrs.evolve(
        job,
        image=image,
        name=f"{job.name}-gpucheck",
        executable=f"{job.name}-gpucheck.sh",
        command=tuple(check),
        gpu_check=(),
        request_gpus=1,
        queue=1,
        items_file=None,
        transfer_input_files=(),
        transfer_output_files=(),
        arguments="$(Cluster).$(Process)",
    )


class _PlainNames:
    """Node names as given (one node per layer): BUILD, GPUCHECK, RUN."""

    def generate(self, layer_name: str, node_index: int) -> str:
        return layer_name

    def parse(self, node_name: str) -> tuple[str, int]:
        return node_name, 0


def write_dag(job: CondorJob, build: BuildJob) -> tuple[str, list[str], bool]:
    """Write ``NAME.dag`` (with ``htcondor2.dags``) and the files of its nodes:

    * BUILD: ``build`` (``write_build``); a PRE script skips it (PRE_SKIP) when the
      image is already staged, and it is marked DONE when it is staged now;
    * GPUCHECK: ``gpu_check_job`` in the staged image; its POST script turns a
      definitive failure (``GPU_CHECK_DEFINITIVE``) into ``ABORT_CODE``, on which
      the DAG aborts, and anything else into a retry (``GPU_CHECK_RETRIES``);
    * RUN: ``job`` in the staged image (``queue N`` or one job per ``--items`` line).

    Returns the DAG's path, every file written, and whether BUILD is already done.
    """
    import tempfile
    from pathlib import Path

    try:
        from htcondor2 import dags
    except ImportError:  # pragma: no cover - the test extra installs htcondor
        raise DefError(
            "--dag writes the DAG with the htcondor2 bindings: pip install htcondor"
        ) from None
    from .templating import render_template

    assert build.staging is not None and build.url is not None
    directory = build.directory
    run = attrs.evolve(job, image=build.url)
    check = gpu_check_job(job, build.url)
    target = os.path.join(build.staging, build.image)
    pre = os.path.join(directory, f"{job.name}-pre-build.sh")
    post = os.path.join(directory, f"{job.name}-post-gpucheck.sh")
    subs = {
        "RUN": (os.path.join(directory, f"{run.name}.sub"), run),
        "GPUCHECK": (os.path.join(directory, f"{check.name}.sub"), check),
    }
    outputs = build.outputs()
    wrappers = [build.path("wrapper"), pre, post]
    for path, node_job in subs.values():
        text = node_job.submit()
        check_submit(text, node_job.items(), node_job.queue_args(), where=path)
        wrapper = os.path.join(directory, node_job.executable)
        outputs += [(path, text), (wrapper, node_job.wrapper())]
        wrappers.append(wrapper)
    outputs += [
        (pre, render_template("condor_pre_build.sh.j2", target=target, skip_code=SKIP_CODE)),
        (
            post,
            render_template(
                "condor_post_gpucheck.sh.j2",
                definitive=[str(c) for c in GPU_CHECK_DEFINITIVE],
                abort_code=ABORT_CODE,
            ),
        ),
    ]
    done = os.path.exists(target)
    dag = dags.DAG()
    node_dir = Path(directory)
    build_layer = dag.layer(
        name="BUILD",
        submit_description=Path(build.path("submit")),
        dir=node_dir,
        pre=dags.Script(pre),
        pre_skip_exit_code=SKIP_CODE,
        done=done,
    )
    check_layer = build_layer.child_layer(
        name="GPUCHECK",
        submit_description=Path(subs["GPUCHECK"][0]),
        dir=node_dir,
        post=dags.Script(post, arguments=["$RETURN"]),
        retries=GPU_CHECK_RETRIES,
        retry_unless_exit=ABORT_CODE,
        abort=dags.DAGAbortCondition(node_exit_value=ABORT_CODE, dag_return_value=1),
    )
    check_layer.child_layer(name="RUN", submit_description=Path(subs["RUN"][0]), dir=node_dir)
    dag_path = os.path.join(directory, f"{job.name}.dag")
    with tempfile.TemporaryDirectory(prefix="defbuilder-dag-") as tmp:
        written = dags.write_dag(
            dag, Path(tmp), dag_file_name="x.dag", node_name_formatter=_PlainNames()
        )
        made = sorted(os.listdir(tmp))
        if made != ["x.dag"]:  # pragma: no cover - no noop nodes, no config
            raise RuntimeError(f"htcondor2.dags wrote more than the DAG: {made}")
        dag_text = written.read_text()
    outputs.append((dag_path, dag_text))
    _distinct(p for p, _ in outputs)
    _make_directory(directory)
    write_outputs(outputs, executable=wrappers)
    return dag_path, [p for p, _ in outputs], done


def build_job_from(
    recipe_path: str,
    directory: str,
    *,
    name: str | None = None,
    staging: str | None = None,
    osdf_prefix: str | None = None,
    sets: Mapping[str, str] | None = None,
    build_args: Sequence[str] = (),
    resources: Mapping[str, Any] | None = None,
) -> BuildJob:
    """The build job ``defbuilder condor --build`` writes for ``recipe_path``.

    ``name``: ``--name``, else the recipe's ``job["name"]``, else the image's stem.
    ``resources``: ``request_cpus`` / ``request_memory`` / ``request_disk`` in place
    of CHTC's build defaults (``BUILD_RESOURCES``); ``None`` values are unset.
    ``staging`` need not exist here: the build job places the image there.
    """
    from .images import build_inputs, image_stem, staged_url

    job_name = name or job_defaults(recipe_path).get("name") or image_stem(recipe_path)
    try:
        _check_plain("name", job_name)
    except JobError as exc:
        origin = "--name" if name else "the job name"
        raise DefError(f"{origin} {exc.value!r}: {exc.reason}") from None
    url = None
    if staging is not None:
        # the build job's machine has it (HasCHTCStaging); this one need not
        staging = os.path.abspath(staging)
    elif osdf_prefix is not None:
        raise DefError("--osdf-prefix is the URL of --staging DIR: give --staging too")
    inputs = build_inputs(recipe_path, sets, build_args)
    if staging is not None:
        url = staged_url(os.path.join(staging, inputs.name), osdf_prefix)
    given = {k: v for k, v in (resources or {}).items() if v is not None}
    try:
        return BuildJob(
            name=job_name,
            inputs=inputs,
            directory=os.path.abspath(directory),
            staging=staging,
            url=url,
            **{**BUILD_RESOURCES, **given},
        )
    except JobError as exc:
        raise DefError(
            f"--build-{exc.field.replace('_', '-')} {exc.value!r}: {exc.reason}"
        ) from None


# --- what `defbuilder condor` writes ---------------------------------------------------------


@attrs.frozen
class Written:
    """What ``write_condor`` wrote, and the lines ``defbuilder condor`` prints about it."""

    paths: tuple[str, ...]
    lines: tuple[str, ...]


def _check_recipe(recipe_path: str) -> None:
    """``recipe_path`` must be an existing ``.py`` recipe script or ``.def`` file."""
    if os.path.isdir(recipe_path):
        raise DefError("is a directory: not a recipe script or .def", file=recipe_path)
    if not os.path.exists(recipe_path):
        raise DefError("no such file", file=recipe_path)
    if not recipe_path.lower().endswith((".py", ".def")):
        raise DefError(
            "not a recipe script or .def (expected a .py or .def file)", file=recipe_path
        )


def _check_items_text(path: str, shown: str) -> None:
    """An items file must be UTF-8 text with at least one item (``queue item from``
    an empty file queues no job)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefError(
            f"not UTF-8 text (byte {exc.start}): an items file is text, one item a line",
            file=shown,
        ) from None
    except OSError as exc:
        raise DefError(f"cannot read the items file: {exc.strerror}", file=shown) from None
    if not text.strip():
        raise DefError("the items file is empty: it would queue no job", file=shown)


def write_condor(
    recipe_path: str,
    directory: str,
    options: Mapping[str, Any] | None = None,
    *,
    mode: Literal["job", "build", "dag"] = "job",
    keys: Iterable[str] = (),
    default_requirements: bool = True,
    staging: str | None = None,
    osdf_prefix: str | None = None,
    sets: Sequence[str] | None = None,
    build_args: Sequence[str] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> Written:
    """Write what ``defbuilder condor`` writes into ``directory``, by ``mode``:

    * ``"job"``: the job (``job_from`` with ``options``, ``keys`` and
      ``default_requirements``; ``write_job``); the build job's settings (``staging``,
      ``osdf_prefix``, ``sets``, ``build_args``, ``resources``) are refused;
    * ``"build"``: the build job (``build_job_from``; ``write_build``), named by
      ``options["name"]``;
    * ``"dag"``: the build job, and the job in the image it stages (its name and
      ``image`` are the build job's), as a DAG (``write_dag``); needs ``staging`` and
      no ``options["image"]``.

    ``options`` are ``CondorJob`` fields (``None`` is unset); ``options["items_file"]``
    must exist and is made absolute. ``sets`` are ``KEY=VALUE`` strings, as ``--set``
    gives them; ``resources`` are the build job's ``request_*`` (``None`` is unset).
    """
    from .loader import parse_sets
    from .render import sh_quote as q

    _check_recipe(recipe_path)
    if not directory:
        raise DefError("-o needs a directory name (it was empty)")
    options = dict(options or {})
    if options.get("items_file"):
        items = os.path.abspath(options["items_file"])
        if os.path.isdir(items):
            raise DefError("is a directory, not an items file", file=options["items_file"])
        if not os.path.isfile(items):
            raise DefError("no such items file", file=options["items_file"])
        _check_items_text(items, options["items_file"])
        options["items_file"] = items
    resources = dict(resources or {})
    if mode == "job":
        build_only = {
            "--staging": staging,
            "--osdf-prefix": osdf_prefix,
            "--set": sets,
            "--build-arg": build_args,
            **{f"--build-{k.replace('_', '-')}": v for k, v in resources.items()},
        }
        given = [opt for opt, value in build_only.items() if value is not None]
        if given:
            raise DefError(f"{given[0]} is for the build job: give --build or --dag")
        job = job_from(recipe_path, options, keys=keys, default_requirements=default_requirements)
        sub, wrapper = write_job(job, directory)
        return Written(
            paths=(sub, wrapper),
            lines=(
                f"wrote {sub} and {wrapper}",
                f"submit:      condor_submit {q(sub)}",
                f"interactive: condor_submit -interactive {q(sub)}",
            ),
        )
    if mode == "dag" and not staging:
        raise DefError("--dag needs --staging DIR: the GPU check and the jobs fetch the image")
    if mode == "dag" and options.get("image"):
        raise DefError("--dag runs the jobs in the image it builds: leave out --image")
    build = build_job_from(
        recipe_path,
        directory,
        name=options.get("name"),
        staging=staging,
        osdf_prefix=osdf_prefix,
        sets=parse_sets(list(sets) if sets is not None else None),
        build_args=build_args or (),
        resources=resources,
    )
    where = build.url or os.path.join(build.directory, build.image)
    if mode == "build":
        paths = write_build(build)
        return Written(
            paths=tuple(paths),
            lines=(
                f"wrote {', '.join(paths)}",
                f"image:       {where}",
                f"submit:      condor_submit {q(build.path('submit'))}",
                f"interactive: condor_submit -interactive {q(build.path('interactive'))}, "
                f"then: sh {q(build.files['wrapper'])}",
            ),
        )
    job = job_from(
        recipe_path,
        {**options, "name": build.name, "image": where},
        keys=keys,
        default_requirements=default_requirements,
    )
    dag, paths, done = write_dag(job, build)
    stale = _earlier_runs(dag)
    force = "-force " if stale else ""
    return Written(
        paths=tuple(paths),
        lines=(
            f"wrote {dag} and {', '.join(p for p in paths if p != dag)}",
            f"image:       {where}" + (" (staged already: BUILD is done)" if done else ""),
            f"submit:      condor_submit_dag {force}{q(dag)}",
            *(
                [
                    f"note:        {', '.join(stale)} from an earlier run: -force renames "
                    "its rescue DAGs, so the new DAG runs from the start"
                ]
                if stale
                else []
            ),
        ),
    )


def _earlier_runs(dag: str) -> list[str]:
    """Files an earlier ``condor_submit_dag DAG`` left beside ``dag``: its rescue DAGs
    (``DAG.rescue001``...) and DAGMan's submit file (``DAG.condor.sub``).

    Submitted again without ``-force``, DAGMan runs the newest rescue DAG, whose
    ``DONE`` nodes (BUILD) belong to the DAG written before, so the regenerated
    image would never be built; and condor_submit_dag refuses to overwrite
    ``DAG.condor.sub``. ``-force`` renames the rescue DAGs and runs the original
    DAG (HTCondor manual, condor_submit_dag, -force; "The Rescue DAG")."""
    directory, base = os.path.split(dag)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    rescue = re.compile(re.escape(base) + r"\.rescue[0-9]+")
    return [n for n in names if rescue.fullmatch(n) or n == f"{base}.condor.sub"]
