"""Jinja2 for defbuilder's own shell-script templates (``defbuilder/templates/*.j2``).

Used off the render path only (the HTCondor job wrapper): the blocks build their
shell text in Python with ``render.sh_quote``, so rendering a recipe never imports
jinja2 (bench/render_latency.py).

Never used on user text or on a whole .def: Apptainer's ``{{ NAME }}`` build-arg
placeholders must pass through untouched, so our templates use other delimiters
(``[= name =]`` for values, ``[% if %]`` for blocks, ``[# #]`` for comments) and
``{{ }}`` / ``${#var}`` in a template are plain text. ``StrictUndefined`` makes a
missing variable an error, and autoescape is off (this is shell, not HTML).

jinja2 is imported inside ``render_template`` only: the CLI's render path for a
recipe without templates must not pay for it.

>>> print(render_template_string("exec [= prog =] \\"$@\\"  # {{ KEEP }} ${#x}", prog="/bin/true"))
exec /bin/true "$@"  # {{ KEEP }} ${#x}
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["render_template", "render_template_string"]


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    from .render import sh_quote

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("defbuilder", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        variable_start_string="[=",
        variable_end_string="=]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = sh_quote
    return env


def render_template(name: str, **context: Any) -> str:
    """Render ``defbuilder/templates/<name>`` with ``context`` (missing names are errors)."""
    return str(_environment().get_template(name).render(**context))


def render_template_string(source: str, **context: Any) -> str:
    """Render a template given as text, with the same settings."""
    return str(_environment().from_string(source).render(**context))
