"""The Publisher interface: where a finished LoRA goes so generation services and people can
load it (the Hugging Face Hub first).

A publisher checks a destination name before anything is queued, and uploads a staged folder
(the LoRA, its converted copy, the model card, samples) as one revision, answering with URLs
pinned to that revision.

Adding one: a module with a class of these members, registered with
``PUBLISHERS.register(name, instance)``, listed in ``lorad.core.plugins.BUILTIN`` (or an entry
point in the ``lorad.publishers`` group). ``hub`` is the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lorad.core.errors import LoradError, PermanentError, TransientError
from lorad.core.plugins import Registry


class PublishError(LoradError):
    """A publish cannot go ahead as asked; the message says what to change."""


class PublishRefused(PermanentError, PublishError):
    pass


class PublishLater(TransientError, PublishError):
    pass


@dataclass
class Published:
    repo: str
    commit_url: str
    revision: str  # the commit: resolve URLs point at it, so they never change under a LoRA
    files: dict[str, str]  # path in repo -> URL pinned to the revision
    # the destination's visibility as read back after creating it (an existing repo keeps
    # its own, whatever was asked); None when the publisher cannot tell
    private: bool | None = None


class Publisher(Protocol):
    name: str
    title: str
    secrets: tuple[str, ...]

    def missing_credentials(self) -> str | None:
        """What is missing before it can publish (a key not in the environment), or None."""
        ...

    def check_repo(self, repo: str) -> str:
        """Refuse a destination the publisher would refuse (PublishError), before queueing."""
        ...

    def publish(self, settings: dict[str, Any], repo: str, folder: Path, *, private: bool,
                message: str) -> Published:
        """Upload `folder` as one revision (blocking); `settings` is lorad.toml's [publish].
        `private` is asked of a new destination; Published.private says what it really is."""
        ...


PUBLISHERS: Registry[Publisher] = Registry("publishers", "publisher")
DEFAULT = "hub"


def get(name: str) -> Publisher:
    return PUBLISHERS.get(name)
