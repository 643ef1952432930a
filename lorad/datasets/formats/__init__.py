"""The DatasetFormat interface: the files a trainer reads beside a dataset version's media and
captions (musubi-tuner's dataset.toml and prompt file, ...), and what the trainer would refuse.

Export (lorad.datasets.export) writes the media, the `.txt` captions and the manifest for every
format, and asks the version's format for the rest; preflight asks it what the trainer would
make of the clips. A model profile names the format its trainer reads; a trainer names the
format it needs (Trainer.dataset_format), and a run refuses a version of another format.

Adding one: a module with a class of these members, registered with
``FORMATS.register(name, instance)``, listed in ``lorad.core.plugins.BUILTIN`` (or an entry
point in the ``lorad.dataset_formats`` group). ``musubi`` is the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from lorad.core.plugins import Registry

if TYPE_CHECKING:
    from lorad.datasets.export import Plan

DEFAULT = "musubi"


class DatasetFormat(Protocol):
    name: str
    media: frozenset[str]  # the clips its trainer reads (lorad.media.profiles.MEDIA)

    def files(self, plan: Plan) -> dict[str, str]:
        """The trainer's files at the version's root, by name (text; written as is)."""
        ...

    def problems(self, plan: Plan) -> list[str]:
        """Everything the trainer would refuse or silently mishandle in those files and in the
        texts that go into them, as sentences (empty when fine)."""
        ...

    def target_frames(self, plan: Plan) -> list[int]:
        """The frame counts the trainer cuts clips to (a clip shorter than all gives nothing)."""
        ...

    def items_per_epoch(self, plan: Plan) -> int:
        """Training items the trainer will make of the version's training clips per epoch."""
        ...

    def batches_per_epoch(self, plan: Plan) -> int:
        """Batches of `plan.options.batch_size` per epoch, as the trainer groups its items."""
        ...

    # Optional: `write_more(plan, folder)` writes files that are not text (a `datasets` folder).
    # Optional: `item_paths(plan, item) -> (media, caption | None)`: where a clip's media and
    # caption go, relative to the version's root (default: `SPLIT/FILE` and `SPLIT/NAME.txt`).


FORMATS: Registry[DatasetFormat] = Registry("dataset_formats", "dataset format")


def get(name: str) -> DatasetFormat:
    return FORMATS.get(name)
