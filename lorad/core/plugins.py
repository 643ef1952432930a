"""Where lorad's implementations come from, and the registries they join.

An implementation (a job kind, a trainer, a pod provider, a generation service, a publisher)
is a module that registers itself when imported. :func:`load` imports, once per group:

- the built-in modules of the group (:data:`BUILTIN`),
- the modules of installed packages' entry points in the group (``lorad.trainers``,
  ``lorad.pod_providers``, ``lorad.generation_services``, ``lorad.publishers``,
  ``lorad.dataset_formats``, ``lorad.jobs``), as harlequin finds its adapters,
- every module named in ``$LORAD_PLUGINS`` (comma-separated; tests use it).

A :class:`Registry` loads its group before it answers, so asking for a trainer by name works
from the CLI, the TUI and the daemon alike. The modules are named here as strings, never
imported by name, so the floors below an implementation stay free of it.

A module that fails to import is logged and remembered, and the rest load: a broken plugin
takes away only what it registers, and asking for that by name says why it is missing.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from lorad.core.errors import LoradError

BUILTIN: dict[str, list[str]] = {
    "jobs": ["lorad.media.ingest", "lorad.datasets.export_job", "lorad.training.train_job",
             "lorad.training.pull_job", "lorad.training.pod_jobs", "lorad.generation.gen_job",
             "lorad.generation.chain_job", "lorad.publish.publish_job",
             "lorad.evaluation.samples"],
    "trainers": ["lorad.training.trainers.musubi", "lorad.training.trainers.diffusion_pipe",
                 "lorad.training.trainers.ace_step",
                 "lorad.training.trainers.command"],
    "pod_providers": ["lorad.training.providers.ssh", "lorad.training.providers.runpod"],
    "generation_services": ["lorad.generation.services.fal", "lorad.evaluation.pod_service"],
    "publishers": ["lorad.publish.publishers.hub"],
    "dataset_formats": ["lorad.datasets.formats.musubi", "lorad.datasets.formats.diffusion_pipe",
                        "lorad.datasets.formats.ace_step",
                        "lorad.training.trainers.command"],
}
# the groups of outside systems' implementations (the ones that declare secrets)
IMPLEMENTATIONS = ("trainers", "pod_providers", "generation_services", "publishers",
                   "dataset_formats")
ENV = "LORAD_PLUGINS"
LEGACY_ENV = "LORAD_HANDLER_MODULES"  # the earlier name, still read

log = logging.getLogger(__name__)
_loaded: dict[str, list[str]] = {}
_failed: dict[str, str] = {}  # module name -> why it did not load
_lock = threading.RLock()


class PluginError(LoradError):
    """A plugin module cannot be loaded, or a name is not registered."""


def env_modules() -> list[str]:
    names = []
    for var in (ENV, LEGACY_ENV):
        names += [n.strip() for n in os.environ.get(var, "").split(",") if n.strip()]
    return list(dict.fromkeys(names))


def load(group: str) -> list[str]:
    """Import the group's implementations; returns the module names. The built-in and entry
    point modules are looked up once; $LORAD_PLUGINS is read every time (importing a module
    already imported costs a dictionary lookup)."""
    with _lock:
        if group not in _loaded:
            names = list(BUILTIN.get(group, []))
            names += [ep.value.split(":")[0] for ep in entry_points(group=f"lorad.{group}")]
            _import(names)
            _loaded[group] = names
        extra = env_modules()
        _import(extra)
        return list(dict.fromkeys(_loaded[group] + extra))


def _import(names: list[str]) -> None:
    for name in dict.fromkeys(names):
        if name in _failed:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
            _failed[name] = f"{exc.__class__.__name__}: {exc}"
            log.warning("lorad plugin module %s did not load: %s", name, _failed[name])


_config: Any = None  # the workspace config last read (Workspace.config): declared items live there


def use_config(config: Any) -> None:
    """Remember the workspace config just read: implementations declared in it as data (a
    command trainer's [trainers.NAME]) come from the last one read. One process serves one
    workspace (the daemon, a CLI command, the TUI)."""
    global _config
    _config = config


def current_config() -> Any:
    return _config


def failures() -> dict[str, str]:
    """Plugin modules that did not load, and why."""
    return dict(_failed)


def load_all(groups: tuple[str, ...] | None = None) -> list[str]:
    return list(dict.fromkeys(name for group in (groups or tuple(BUILTIN))
                              for name in load(group)))


T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one interface; ``register`` is the one line an implementation
    module adds."""

    def __init__(self, group: str, noun: str) -> None:
        self.group = group
        self.noun = noun
        self._items: dict[str, T] = {}
        self._sources: list[Callable[[], tuple[dict[str, T], dict[str, str]]]] = []

    def add_source(self, source: Callable[[], tuple[dict[str, T], dict[str, str]]]) -> None:
        """Items made from data at lookup time (trainers declared in lorad.toml): `source`
        returns them by name, and the names whose declaration is broken with why."""
        self._sources.append(source)

    def _all(self) -> tuple[dict[str, T], dict[str, str]]:
        load(self.group)
        items, broken = dict(self._items), {}
        for source in self._sources:
            made, problems = source()
            items.update(made)
            broken.update(problems)
        return items, broken

    def registered(self) -> set[str]:
        """The names registered by modules (not made from data)."""
        load(self.group)
        return set(self._items)

    def problems(self) -> dict[str, str]:
        """Declared items that cannot be used, and why (file, line and key)."""
        return self._all()[1]

    def register(self, name: str, item: T) -> T:
        from lorad.core import secrets

        self._items[name] = item
        secrets.declare(*getattr(item, "secrets", ()))
        return item

    def get(self, name: str) -> T:
        load(self.group)
        if name in self._items:
            return self._items[name]
        items, broken = self._all()
        if name in broken:
            raise PluginError(broken[name])
        try:
            return items[name]
        except KeyError:
            known = ", ".join(sorted(items)) or "none"
            broken = "".join(f"; {module} did not load ({why})"
                             for module, why in sorted(_failed.items()))
            raise PluginError(f"unknown {self.noun} {name!r} (known: {known}){broken}") from None

    def names(self) -> list[str]:
        return sorted(self._all()[0])

    def items(self) -> Iterable[tuple[str, T]]:
        return sorted(self._all()[0].items())

