"""The GenerationService interface: a remote queue that turns parameters into an output file.

A service opens a session (reading its key from the environment), submits a request and hands
back an opaque handle that lorad stores with the generation, reports the request's state,
fetches its result, cancels it, uploads an input file and downloads the output. The
``gen.run`` job (``lorad.generation.gen_job``) drives any service through these methods; which
service a generation uses is its endpoint's ``service``.

Adding one: a module with a class of these members, registered with
``SERVICES.register(name, instance)``, listed in ``lorad.core.plugins.BUILTIN`` (or an entry
point in the ``lorad.generation_services`` group), and its endpoints in
``lorad.generation.endpoints`` naming it. ``fal`` is the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lorad.core.errors import PermanentError
from lorad.core.plugins import Registry


class ServiceError(PermanentError):
    """The service refused or failed in a way retrying will not fix."""


class CredentialsMissing(ServiceError):
    """The service's key is not in the environment; nothing was sent."""


class ResultGone(ServiceError):
    """The service no longer keeps the request's result."""


class SubmitUnknown(ServiceError):
    """A submit was sent and its answer lost (the connection dropped, a read timed out): the
    service may have accepted it, and would bill it. It must not be sent again by itself."""


class RequestFailed(ServiceError):
    """The request ran and failed on the service (the model's own error)."""

    def __init__(self, message: str, error_type: str | None = None):
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class Request:
    """A submitted request: the service's id for it, and everything needed to follow it."""

    request_id: str
    handle: dict[str, Any]  # JSON; stored with the generation, given back as is


@dataclass(frozen=True)
class RequestStatus:
    state: str  # queued | running | done (done also when it failed or was cancelled)
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # e.g. inference_time

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def failed(self) -> bool:
        return self.done and bool(self.error)


class ServiceSession(Protocol):
    """An open connection to a service; every call blocks (the job runs it in a thread)."""

    def submit(self, endpoint: str, arguments: dict[str, Any]) -> Request:
        """Send a request once: retry only what certainly did not reach the service (a refused
        connection, an answer saying no); raise SubmitUnknown when the answer was lost."""
        ...

    def status(self, handle: dict[str, Any]) -> RequestStatus: ...

    def result(self, handle: dict[str, Any]) -> dict[str, Any]: ...

    def cancel(self, handle: dict[str, Any]) -> str:
        """The service's word on the cancel (fal: CANCELLATION_REQUESTED, ALREADY_COMPLETED...)."""
        ...

    def upload(self, path: Path) -> str:
        """Put a local input file where the service can read it; returns its URL."""
        ...

    def download(self, url: str, dest_dir: Path, *, max_bytes: int, stem: str) -> Path:
        """Save an output under `dest_dir/<stem><ext>`, never under a name the service chose."""
        ...

    def close(self) -> None: ...


class GenerationService(Protocol):
    name: str  # the registry key; endpoints and generations name it
    title: str
    secrets: tuple[str, ...]

    def open(self, settings: dict[str, Any], workspace: Any = None) -> ServiceSession:
        """A session, configured from lorad.toml's [generations]; raises CredentialsMissing
        when its key is not set. `workspace`: the one the generation is in (a service on the
        user's own pods reaches them through its store)."""
        ...

    def output_url(self, result: dict[str, Any]) -> str:
        """The output file a result points at."""
        ...

    def output_text(self, result: dict[str, Any]) -> tuple[str, float | None]:
        """A text endpoint's answer (a caption) and, when the result says, what the request
        was charged in dollars."""
        ...

    # Optional: `charge(result) -> (dollars, book)`: what the request cost when only its result
    # can say (pod time), and whether the ledger books it (False: it is in a cost booked
    # elsewhere, such as a RunPod pod's uptime). `metrics_of(result) -> dict[str, float]`:
    # scores the request printed, kept with the generation.


SERVICES: Registry[GenerationService] = Registry("generation_services", "generation service")


def get(name: str) -> GenerationService:
    return SERVICES.get(name)
