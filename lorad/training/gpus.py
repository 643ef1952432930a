"""The GPUs of a pod, as its check found them, and whether a trainer fits on them.

`nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits` prints one
line per GPU ("NVIDIA A100-SXM4-80GB, 81920, 81037", MiB). A trainer may declare the GPU memory
it needs (`Trainer.gpu_memory_gb`); a run is refused on a pod that was checked and has less
free, with the GPU types that would fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

QUERY = ("nvidia-smi --query-gpu=name,memory.total,memory.free "
         "--format=csv,noheader,nounits")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Gpu:
    name: str
    total_mib: int
    free_mib: int

    @property
    def total_gb(self) -> float:
        return self.total_mib * MIB / 1e9

    @property
    def free_gb(self) -> float:
        return self.free_mib * MIB / 1e9

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse(text: str) -> list[Gpu]:
    """The GPUs of nvidia-smi's CSV answer; lines that do not parse are left out."""
    found = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            found.append(Gpu(parts[0], int(float(parts[1])), int(float(parts[2]))))
        except ValueError:
            continue
    return found


def describe(gpus: list[Gpu]) -> str:
    """`2 x NVIDIA A100-SXM4-80GB (85.9 GB, 85.0 GB free each)`."""
    if not gpus:
        return "no GPU"
    names = sorted({g.name for g in gpus})
    free = min(g.free_gb for g in gpus)
    each = " each" if len(gpus) > 1 else ""
    return (f"{len(gpus)} x {' / '.join(names)} ({gpus[0].total_gb:.1f} GB, "
            f"{free:.1f} GB free{each})")


# Common GPU pod types and their memory (GB), smallest first: what to suggest when a pod has
# too little (RunPod's GPU types; the names are theirs).
POD_TYPES: list[tuple[str, int]] = [
    ("RTX A4000", 16), ("RTX 4000 Ada", 20), ("RTX 3090", 24), ("RTX 4090", 24), ("L4", 24),
    ("RTX A5000", 24), ("RTX 5090", 32), ("RTX A6000", 48), ("RTX 6000 Ada", 48), ("L40S", 48),
    ("A40", 48), ("A100 80GB", 80), ("H100 80GB", 80), ("H200", 141),
]


def types_that_fit(need_gb: float) -> list[str]:
    return [f"{name} ({gb} GB)" for name, gb in POD_TYPES if gb >= need_gb]


def shortfall(gpus: list[Gpu], need_gb: float, who: str) -> str | None:
    """Why these GPUs cannot run something that needs `need_gb` of free memory on each GPU it
    uses (None: they can). `who` names it in the sentence."""
    if not gpus:
        return f"{who} needs a GPU with {need_gb:g} GB free, and the pod's check found none"
    best = max(gpus, key=lambda g: g.free_mib)
    if best.free_gb >= need_gb:
        return None
    said = f"{who} needs {need_gb:g} GB of free GPU memory; the pod has {describe(gpus)}"
    if max(g.total_gb for g in gpus) >= need_gb:  # big enough, but something holds it
        held = best.total_gb - best.free_gb
        return (f"{said}: another process holds {held:.1f} GB of it; stop that process "
                "(nvidia-smi lists it) or use another pod")
    fits = types_that_fit(need_gb)
    return (f"{said}: pick a pod type with at least {need_gb:g} GB ("
            f"{', '.join(fits[:6]) or 'none known'})")
