"""Secrets: read only from the environment, never stored, never logged.

Each implementation of an outside system declares the names of the secrets it reads (its
``secrets`` attribute; the registry declares them here when it registers the implementation),
and :func:`redact` removes their values from any text. ``lorad.core.logs`` redacts with every
implementation loaded, so a secret is known before any text is written anywhere.
"""

from __future__ import annotations

import os

MIN_LENGTH = 4  # shorter values would redact ordinary words

_declared: set[str] = set()


def declare(*names: str) -> None:
    _declared.update(names)


def declared() -> list[str]:
    """The secret names declared so far (lorad.core.logs loads every implementation first)."""
    return sorted(_declared)


def get(name: str) -> str | None:
    """A secret from the environment; an empty value counts as unset."""
    return os.environ.get(name) or None


def values() -> list[str]:
    return [v for v in (get(n) for n in declared()) if v and len(v) >= MIN_LENGTH]


