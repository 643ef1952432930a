"""Any machine reachable over SSH, kept running by its owner: lorad connects to the endpoint it
was given and never powers it on or off."""

from __future__ import annotations

from lorad.core.errors import LoradError, PermanentError
from lorad.training.providers import PROVIDERS, PodUp


class SshHost:
    name = "ssh"
    title = "an SSH host"
    secrets: tuple[str, ...] = ()
    can_power_off = False
    default_policy = {"on_finish": "none", "on_failure": "none", "idle_minutes": 10}

    def validate(self, pod) -> None:
        if not pod.ssh_host:
            raise LoradError("an SSH pod needs --host (and --port, --user, --key)")

    def ensure_running(self, pod, *, timeout: float, poll: float) -> PodUp:
        return PodUp(pod.ssh_host, pod.ssh_port or 22, pod.ssh_user or "root", pod.cost_per_hour)

    def stop(self, pod) -> None:
        raise PermanentError(f"pod {pod.name} is a plain SSH host: lorad cannot power it off")

    terminate = stop


PROVIDERS.register(SshHost.name, SshHost())
