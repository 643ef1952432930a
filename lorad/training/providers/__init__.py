"""The PodProvider interface: how lorad gets a pod it can SSH into, and lets it go.

A provider makes sure a pod runs and says where its SSH endpoint is and what it costs, and
stops or terminates it. Everything else about pods (the row, host-key pins, checks, the idle
policy, the cost ledger) is the same for every provider and lives in ``lorad.training.pods``.

Adding one: a module with a class of these members, registered with
``PROVIDERS.register(name, instance)``, listed in ``lorad.core.plugins.BUILTIN`` (or an entry
point in the ``lorad.pod_providers`` group). ``ssh`` (any host) and ``runpod`` are the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lorad.core.plugins import Registry

if TYPE_CHECKING:
    from lorad.training.pods import Pod


@dataclass(frozen=True)
class PodUp:
    """A running pod, as its provider reports it."""

    host: str
    port: int
    user: str
    cost_per_hour: float
    restarted: bool = False  # started by this call: a new container, a new host key
    info: dict[str, Any] = field(default_factory=dict)  # shown on the Pods screen (gpu...)


class PodProvider(Protocol):
    name: str  # the registry key; pods record it
    title: str
    secrets: tuple[str, ...]  # environment variables it reads (redacted from logs)
    can_power_off: bool  # whether stop/terminate do anything (an SSH host: no)
    default_policy: dict[str, Any]  # on_finish / on_failure (none | stop | terminate), idle_minutes

    def validate(self, pod: Pod) -> None:
        """Refuse a pod row this provider cannot use (raise a LoradError saying what to add)."""
        ...

    def ensure_running(self, pod: Pod, *, timeout: float, poll: float) -> PodUp:
        """Start the pod if it needs it and wait until SSH can reach it (blocking)."""
        ...

    def stop(self, pod: Pod) -> None: ...

    def terminate(self, pod: Pod) -> None: ...


PROVIDERS: Registry[PodProvider] = Registry("pod_providers", "pod provider")


def get(name: str) -> PodProvider:
    return PROVIDERS.get(name)
