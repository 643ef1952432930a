"""Command templates of declared trainers: `{name}` placeholders, each value shell-quoted.

A template is a shell command with Python format fields: `--lr {learning_rate}`. Every value
put in is quoted with ``shlex.quote`` (a list gives one quoted word per item), so nothing in an
option, a path or a prompt can become shell syntax; `{{` and `}}` are literal braces. A few
values are shell text lorad built and quoted piece by piece already (`{resume}`), and go in as
they are. Anything else in a field (`{x!r}`, `{x:>4}`, `{x.y}`, `{x[0]}`) is refused, so a
template means the same to lorad and to a reader.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterable, Mapping
from typing import Any


class TemplateError(ValueError):
    """A template lorad cannot fill: the message names the field."""


def fields(template: str) -> list[str]:
    """The placeholders of a template, in order; raises TemplateError on malformed ones."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(f"placeholder {{{name}}} is not a plain name (use "
                                "letters, digits and _; write {{ and }} for literal braces)")
        if spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} may not have a conversion or format "
                                "spec")
        names.append(name)
    return names


def unknown(template: str, known: Iterable[str]) -> list[str]:
    """Placeholders of `template` that are not in `known`."""
    allowed = set(known)
    return [name for name in dict.fromkeys(fields(template)) if name not in allowed]


def quoted(value: Any) -> str:
    """A value as shell words: strings and numbers one quoted word, a list one per item,
    true/false as `true`/`false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(quoted(v) for v in value)
    if isinstance(value, float):
        return shlex.quote(repr(value))
    return shlex.quote(str(value))


def render(template: str, values: Mapping[str, Any], raw: Mapping[str, str] | None = None
           ) -> str:
    """The template with every field filled: `raw` values as they are (shell text lorad quoted
    already), the rest quoted. A missing value is a TemplateError."""
    raw = raw or {}
    out = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name in raw:
            out.append(raw[name])
        elif name in values:
            out.append(quoted(values[name]))
        else:
            raise TemplateError(f"no value for {{{name}}}")
    return "".join(out)
