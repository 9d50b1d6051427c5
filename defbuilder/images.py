"""Images after the .def: build with apptainer, hash-name for OSDF, push, mimic CHTC.

Calls the real ``apptainer`` (or ``singularity`` where that is what is installed);
tests put a fake on PATH. Nothing here runs at ``render`` time.

* ``hash_name``: ``NAME-<first 8 hex of sha256>.sif``, as the seed does with
  ``openssl sha256 -r FILE | cut -b -8``; the file is read in 1 MiB chunks.
* ``stage_image``: copies into a staging directory and gives the ``osdf:///`` URL.
  Everything is checked before a byte is copied; the copy goes to a unique temp
  file in the staging directory (removed on error, Ctrl-C or SIGTERM), is
  fsync'ed, and is published under its name only if that name is still free
  (``fileio.publish_copy``: a hard link or ``renameat2(RENAME_NOREPLACE)``). OSDF
  caches are immutable, so an existing *different* file of the same name is
  refused, an identical one is fine, and two concurrent pushes of different
  images under one name end with exactly one of them staged, whole.
* ``build_inputs``: the image's *input-addressed* name, ``NAME-<8 hex>.sif``, from
  a SHA-256 over what ``apptainer build`` reads (``inputs_digest``): the rendered
  .def, every local file a ``%files`` / ``%appfiles`` section copies (sources
  resolved against the recipe's directory, as ``apptainer build`` run there
  does; globs expanded; directories walked in sorted order; each with its
  relative path and whether it is executable, not its timestamp or owner), the
  ``--set`` values and the ``--build-arg`` values. Known before building, the
  same on every machine, and changed by any changed input byte.
* ``chtc_exec_argv``: the seed's CHTC-like ``apptainer exec`` line.
* ``build_image``: ``apptainer build`` of a rendered .def, written to a hidden temp
  file beside the recipe (``%files`` paths resolve from there) and removed after,
  also on Ctrl-C or SIGTERM; ``image_path`` names the image, ``build_arg_flags``
  checks ``--build-arg``. The hash-named image never replaces another file.
* ``build_recipe``: all of ``defbuilder build``: names the image (by its inputs,
  skipping the build when that image exists; or by its content), builds, stages, and
  returns what to print and the exit status (``Built``).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from .errors import DefError
from .fileio import TempFile, clobber_error, publish_copy, rename_no_clobber

if TYPE_CHECKING:
    from .model import Recipe

__all__ = [
    "BuildInputs",
    "Built",
    "apptainer_binary",
    "build_arg_flags",
    "build_image",
    "build_inputs",
    "build_recipe",
    "chtc_exec_argv",
    "hash_name",
    "host_sources",
    "image_path",
    "image_stem",
    "input_files",
    "inputs_digest",
    "osdf_url",
    "sha256_file",
    "stage_image",
    "staged_url",
]

_CHUNK = 1 << 20
INSTALL_HINT = (
    "install Apptainer (https://apptainer.org/docs/admin/main/installation.html; "
    "e.g. `apt install apptainer` from the apptainer PPA, or "
    "`conda install -c conda-forge apptainer`)"
)


def apptainer_binary() -> str:
    """``apptainer`` on PATH, else ``singularity``, else a DefError with an install hint."""
    for name in ("apptainer", "singularity"):
        path = shutil.which(name)
        if path:
            return path
    raise DefError("neither apptainer nor singularity is on PATH; " + INSTALL_HINT)


def sha256_file(path: str) -> str:
    """Hex sha256 of a file, streamed in chunks (constant memory)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DefError(f"cannot read image: {exc.strerror}", file=path) from None
    return digest.hexdigest()


def hash_name(path: str) -> str:
    """``dir/NAME-<sha8>.sif`` for ``dir/NAME.sif``.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "app.sif")
    >>> _ = open(p, "wb").write(b"")
    >>> os.path.basename(hash_name(p))   # sha256 of nothing starts e3b0c442
    'app-e3b0c442.sif'
    """
    directory, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    return os.path.join(directory, f"{stem}-{sha256_file(path)[:8]}{ext or '.sif'}")


def osdf_url(staging_path: str) -> str:
    """``/staging/<user>/x.sif`` -> ``osdf:///chtc/staging/<user>/x.sif`` (CHTC's mapping)."""
    real = os.path.abspath(staging_path)
    if not real.startswith("/staging/"):
        raise DefError(
            f"{staging_path} is not under /staging/: give --osdf-prefix "
            "(the osdf:/// URL of that directory)"
        )
    return "osdf:///chtc" + real


#: What a staged image may be called: it becomes part of a URL and of submit files.
_STAGED_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_URL_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]*")


def _same_file(a: str, b: str) -> bool:
    return os.path.getsize(a) == os.path.getsize(b) and sha256_file(a) == sha256_file(b)


def staged_url(target: str, osdf_prefix: str | None = None) -> str:
    """The URL a job fetches the staged file ``target`` from: ``osdf_prefix/NAME``,
    or CHTC's mapping of ``/staging/...`` (``osdf_url``)."""
    if osdf_prefix is None:
        return osdf_url(target)
    if not _URL_PREFIX.fullmatch(osdf_prefix):
        raise DefError(
            f"--osdf-prefix {osdf_prefix!r}: expected a URL such as osdf:///chtc/staging/USER"
        )
    return osdf_prefix.rstrip("/") + "/" + os.path.basename(target)


def check_staging(staging_dir: str) -> None:
    """``staging_dir`` must be an existing directory."""
    if os.path.exists(staging_dir) and not os.path.isdir(staging_dir):
        raise DefError("the staging directory is not a directory", file=staging_dir)
    if not os.path.isdir(staging_dir):
        raise DefError("staging directory does not exist", file=staging_dir)


def stage_image(image: str, staging_dir: str, osdf_prefix: str | None = None) -> tuple[str, str]:
    """Copy ``image`` into ``staging_dir``; return (path, osdf URL).

    Refuses to replace a different file of the same name (OSDF caches are
    immutable, so a reused name would serve stale bytes); see the module doc.
    """
    if not os.path.isfile(image):
        raise DefError("no such image (expected a .sif file)", file=image)
    if not os.access(image, os.R_OK):
        raise DefError("cannot read image: Permission denied", file=image)
    name = os.path.basename(image)
    if not _STAGED_NAME.fullmatch(name):
        raise DefError(
            f"image name {name!r}: a staged image name is letters, digits and . _ + - "
            "(it becomes part of a URL); rename it",
        )
    check_staging(staging_dir)
    target = os.path.join(staging_dir, name)
    url = staged_url(target, osdf_prefix)
    try:
        publish_copy(image, target, _same_file)
    except OSError as exc:
        raise DefError(f"cannot stage the image: {exc.strerror}", file=target) from None
    return target, url


def chtc_exec_argv(binary: str, image: str, command: Sequence[str], cwd: str) -> list[str]:
    """The seed's local mimic of a CHTC job (upstream README, "To mimic the conditions").

    ``cwd`` is bound into the container: it may not hold ``:`` or ``,``, where
    Apptainer's ``--bind`` splits its list (``src[:dest[:opts]][,...]``, Apptainer
    manual, "Bind Paths and Mounts"), nor be ``/``, which would hide the image's own
    root.
    """
    bad = sorted({ch for ch in cwd if ch in ":,"})
    if bad:
        raise DefError(
            f"the current directory holds {' and '.join(repr(c) for c in bad)}, where "
            "Apptainer's --bind splits its list: run from a directory without them",
            file=cwd,
        )
    if os.path.abspath(cwd) == "/":
        raise DefError("mimic-chtc binds the current directory: run it from a job directory, not /")
    return [
        binary,
        "exec",
        "--scratch",
        "/tmp",
        "--scratch",
        "/var/tmp",
        "--workdir",
        cwd,
        "--pwd",
        cwd,
        "--bind",
        cwd,
        "--no-home",
        "--containall",
        "--nv",
        image,
        *(command or ["bash"]),
    ]


def image_stem(recipe_path: str) -> str:
    """NAME of ``NAME.sif``: the recipe's directory for ``.../NAME/recipe.py``, else
    the script's own stem.

    >>> image_stem("recipes/hello_pytorch/recipe.py"), image_stem("train.py")
    ('hello_pytorch', 'train')
    """
    if os.path.basename(recipe_path) == "recipe.py":
        return os.path.basename(os.path.dirname(os.path.abspath(recipe_path)))
    return os.path.splitext(os.path.basename(recipe_path))[0]


def image_path(recipe_path: str, output: str | None = None) -> str:
    """Where ``build`` writes the image, as an absolute path.

    ``output`` when given, else ``NAME.sif`` in the current directory (``image_stem``).

    >>> os.path.basename(image_path("recipes/hello_pytorch/recipe.py"))
    'hello_pytorch.sif'
    >>> os.path.basename(image_path("train.py"))
    'train.sif'
    """
    if output:
        if output.endswith(os.sep) or os.path.isdir(output):
            if not os.path.isdir(output):
                raise DefError("-o: the directory does not exist", file=output)
            raise DefError("-o names the image file, not a directory", file=output)
        return os.path.abspath(output)
    return os.path.abspath(image_stem(recipe_path) + ".sif")


# --- input-addressed names ---------------------------------------------------------------


def host_sources(recipe: Recipe) -> list[str]:
    """The host paths the recipe's ``%files`` and ``%appfiles`` sections copy, as
    written, in order, each once (``%files from STAGE`` copies from a stage, not
    the host)."""
    seen: dict[str, None] = {}
    for stage in recipe.stages:
        for files in stage.files:
            if files.from_stage is None:
                for entry in files.entries:
                    seen.setdefault(entry.src, None)
        for app in stage.apps:
            for entry in app.files:
                seen.setdefault(entry.src, None)
    return list(seen)


@attrs.frozen
class InputFile:
    """One file or directory a build copies: its path as the build sees it (relative
    to the recipe's directory unless the source is absolute), the real path, and
    whether it is a directory."""

    name: str
    path: str
    is_dir: bool


def input_files(sources: Sequence[str], base: str) -> list[InputFile]:
    """Every file and directory ``sources`` name, resolved against ``base`` the way
    ``apptainer build`` run in ``base`` resolves them (globs expanded, symbolic
    links followed, as its ``cp -fLr`` does); directories are walked in sorted
    order. A source that matches nothing is a ``DefError``."""
    out: list[InputFile] = []
    for src in sources:
        pattern = src if os.path.isabs(src) else os.path.join(base, src)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(src) else [pattern]
        matches = [m for m in matches if os.path.exists(m)]
        if not matches:
            raise DefError(f"%files source {src!r} does not exist (looked in {base})")
        for match in matches:
            name = match if os.path.isabs(src) else os.path.relpath(match, base)
            out += _walk(name, match, set())
    return out


def _walk(name: str, path: str, active: set[tuple[int, int]]) -> Iterator[InputFile]:
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        yield InputFile(name, path, False)
        return
    key = (st.st_dev, st.st_ino)
    if key in active:
        raise DefError(f"%files source {name!r}: a symbolic link loops back to its directory")
    yield InputFile(name, path, True)
    for child in sorted(os.listdir(path)):
        yield from _walk(f"{name}/{child}", os.path.join(path, child), active | {key})


def inputs_digest(
    def_text: str,
    files: Sequence[InputFile],
    sets: Mapping[str, str] | None = None,
    build_args: Sequence[str] = (),
) -> str:
    """SHA-256 (hex) over the .def, each input file (path, executable or not,
    content; a directory's path), the ``--set`` values and the build arguments.

    Every field is length-prefixed, so no two different inputs read the same.
    Timestamps, owners and umask-dependent mode bits are left out: a checkout on
    another machine gives the same digest.
    """
    digest = hashlib.sha256(b"defbuilder build inputs v1\n")

    def put(tag: str, data: bytes) -> None:
        digest.update(f"{tag} {len(data)}\n".encode())
        digest.update(data)

    put("def", def_text.encode("utf-8"))
    for key, value in sorted((sets or {}).items()):
        put("set", key.encode())
        put("value", value.encode())
    for arg in build_args:
        put("build-arg", arg.encode())
    for item in files:
        if item.is_dir:
            put("dir", item.name.encode())
            continue
        executable = bool(os.stat(item.path).st_mode & 0o111)
        put("file", f"{'x' if executable else '-'} {item.name}".encode())
        size = os.path.getsize(item.path)
        digest.update(f"content {size}\n".encode())
        with open(item.path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@attrs.frozen
class BuildInputs:
    """What a build of ``recipe_path`` reads, and the image name they address."""

    recipe_path: str
    def_text: str
    files: tuple[InputFile, ...]
    sets: tuple[tuple[str, str], ...]
    build_args: tuple[str, ...]
    digest: str

    @property
    def base(self) -> str:
        """The recipe's directory: relative ``%files`` sources resolve from here."""
        return os.path.dirname(os.path.abspath(self.recipe_path))

    @property
    def name(self) -> str:
        """``NAME-<first 8 hex of the digest>.sif``."""
        return f"{image_stem(self.recipe_path)}-{self.digest[:8]}.sif"

    def top_level(self) -> list[InputFile]:
        """The files and directories the sources name (not what a directory holds)."""
        dirs: list[str] = []
        out: list[InputFile] = []
        for item in self.files:
            if any(item.name.startswith(d + "/") for d in dirs):
                continue
            out.append(item)
            if item.is_dir:
                dirs.append(item.name)
        return out


def build_inputs(
    recipe_path: str, sets: Mapping[str, str] | None = None, build_args: Sequence[str] = ()
) -> BuildInputs:
    """Render ``recipe_path`` with ``sets`` and name what its build reads (module doc)."""
    from .loader import load_recipe
    from .render import render

    recipe = load_recipe(recipe_path, sets or {})
    flags = build_arg_flags(recipe, build_args)
    text = render(recipe)
    base = os.path.dirname(os.path.abspath(recipe_path))
    files = input_files(host_sources(recipe), base)
    sets = dict(sets or {})
    args = tuple(flags[1::2])
    return BuildInputs(
        recipe_path=recipe_path,
        def_text=text,
        files=tuple(files),
        sets=tuple(sorted(sets.items())),
        build_args=args,
        digest=inputs_digest(text, files, sets, args),
    )


def build_arg_flags(recipe: Recipe, items: Sequence[str]) -> list[str]:
    """``--build-arg NAME=VALUE`` flags for ``apptainer build``, each checked.

    Apptainer stops on a build arg the .def does not declare
    (``cmd/internal/cli/build_linux.go``), so that is refused here, before building.
    """
    declared = {a.name for s in recipe.stages for a in s.declared_build_args()}
    flags: list[str] = []
    for item in items:
        name, sep, _value = item.partition("=")
        if not sep:
            raise DefError(f"--build-arg {item!r}: expected NAME=VALUE")
        if name not in declared:
            raise DefError(
                f"--build-arg {name}: the recipe declares no such argument "
                f"(declared: {', '.join(sorted(declared)) or 'none'})"
            )
        flags += ["--build-arg", item]
    return flags


def build_image(
    binary: str,
    def_text: str,
    recipe_path: str,
    output: str,
    *,
    flags: Sequence[str] = (),
    hash_named: bool = False,
) -> tuple[int, str]:
    """Run ``BINARY build FLAGS OUTPUT DEF``; return (its exit status, the image path).

    The .def is written to a hidden temp file in the recipe's directory, which is
    also the working directory, and removed afterwards. The command line and
    apptainer's progress go to stderr (stdout is left for the image path). With
    ``hash_named``, a built image is renamed to ``hash_name(output)``.
    """
    recipe_dir = os.path.dirname(os.path.abspath(recipe_path))
    with TempFile(os.path.join(recipe_dir, "defbuilder"), 0o644, suffix=".def") as tmp:
        with os.fdopen(os.dup(tmp.fd), "w", encoding="utf-8") as fh:
            fh.write(def_text)
        argv = [binary, "build", *flags, output, tmp.path]
        print("+ " + " ".join(argv), file=sys.stderr, flush=True)
        status = subprocess.run(argv, cwd=recipe_dir, stdout=sys.stderr.fileno()).returncode
    if status == 0 and hash_named:
        output = publish_renamed(output, hash_name(output))
    if status == 0:
        from .blocks.pixi import hand_back_locks  # the lock an unlocked pixi install solved

        hand_back_locks(binary, output, def_text, recipe_path)
    return status, output


def publish_renamed(path: str, named: str) -> str:
    """Give the image ``path`` the name ``named`` without replacing another file there.

    An identical file under that name is kept (``path`` is removed); a different
    one is refused, as in staging. Returns ``named``.
    """
    if os.path.abspath(path) == os.path.abspath(named):
        return named
    try:
        if not rename_no_clobber(path, named):
            if not (os.path.isfile(named) and _same_file(path, named)):
                raise clobber_error(named)
            os.unlink(path)
    except OSError as exc:
        raise DefError(f"cannot name the image: {exc.strerror}", file=named) from None
    return named


# --- defbuilder build ------------------------------------------------------------------------


@attrs.frozen
class Built:
    """How ``build_recipe`` ended: ``status``, apptainer's exit status (0 when the image
    was built, or found already built from the same inputs); ``image``, what ``defbuilder
    build`` prints on stdout: the image's path, or its URL when it was staged (``None``
    on failure); ``error``, the line it prints on stderr when the build failed."""

    status: int
    image: str | None = None
    error: str | None = None


def build_recipe(
    recipe_path: str,
    output: str | None = None,
    *,
    sets: Mapping[str, str] | None = None,
    build_args: Sequence[str] = (),
    by_inputs: bool = False,
    hash_named: bool = False,
    staging: str | None = None,
    osdf_prefix: str | None = None,
    apptainer_args: Sequence[str] = (),
) -> Built:
    """Build ``recipe_path`` into ``image_path(recipe_path, output)``, as ``defbuilder build``.

    * ``by_inputs``: the image is ``NAME-<8 hex>.sif`` beside that path, named by its
      inputs (``build_inputs``). When it exists there or in ``staging``, nothing is built
      (a note goes to stderr); else it is built into a temp file there and published
      under its name only whole (``publish_renamed``);
    * ``hash_named``: the built image is renamed by its content (``hash_name``);
    * ``staging``: checked first; the image is copied there (``stage_image``) and its
      URL is what ``Built.image`` holds.

    ``sets`` go to the recipe function, ``build_args`` and ``apptainer_args`` to
    ``apptainer build`` (``build_image``, whose progress goes to stderr).
    """
    sets = dict(sets or {})
    output = image_path(recipe_path, output)
    if staging:
        check_staging(staging)
    if by_inputs:
        inputs = build_inputs(recipe_path, sets, build_args)
        text = inputs.def_text
        args_flags = [f for a in inputs.build_args for f in ("--build-arg", a)]
        stem = os.path.splitext(os.path.basename(output))[0]
        final = os.path.join(os.path.dirname(output), f"{stem}-{inputs.digest[:8]}.sif")
        staged = os.path.join(staging, os.path.basename(final)) if staging else ""
        found = final if os.path.exists(final) else staged if os.path.exists(staged) else ""
        if found:
            # a note as it happens: staging what was built here may still fail
            print(
                f"defbuilder: {found} exists, built from the same inputs: not building",
                file=sys.stderr,
            )
            if not staged:
                return Built(0, final)
            if os.path.exists(staged):
                return Built(0, staged_url(staged, osdf_prefix))
            assert staging  # built here before, not staged yet
            return Built(0, stage_image(final, staging, osdf_prefix)[1])
    else:
        from .loader import load_recipe
        from .render import render

        recipe = load_recipe(recipe_path, sets)
        text, args_flags = render(recipe), build_arg_flags(recipe, build_args)
        final = output
    binary = apptainer_binary()
    flags = [*args_flags, *apptainer_args]
    if by_inputs:
        with TempFile(final, suffix=".sif") as tmp:
            os.unlink(tmp.path)  # apptainer creates it; an interrupted build's part goes too
            status, image = build_image(binary, text, recipe_path, tmp.path, flags=flags)
            if status == 0:
                image = publish_renamed(tmp.path, final)
                tmp.done()
    else:
        status, image = build_image(
            binary, text, recipe_path, final, flags=flags, hash_named=hash_named
        )
    if status != 0:
        return Built(
            status,
            error=f"defbuilder: {os.path.basename(binary)} build failed with status {status}",
        )
    if staging:
        return Built(0, stage_image(image, staging, osdf_prefix)[1])
    return Built(0, image)
