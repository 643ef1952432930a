"""ACE-Step's dataset format (ace-step/ACE-Step v1: convert2hf_dataset.py, trainer.py,
config/zh_rap_lora_config.json): a Hugging Face `datasets` folder written with the `datasets`
library, one example per track and repeat:

    {"keys": stem, "filename": the MP3 on the pod, "tags": [comma-separated tag prompt],
     "speaker_emb_path": "", "norm_lyrics": lyrics, "recaption": {}}

Beside it: the tracks with convert2hf_dataset.py's own sidecars (`NAME_prompt.txt`,
`NAME_lyrics.txt`: the dataset can be rebuilt with ACE-Step's script), `hf_validation/` over
the seeded validation split, the LoRA config (`lora_config.json`: r 256, lora_alpha 32, rsLoRA,
ACE-Step's target modules, as its example) and `summary.json` (train and validation counts).
A track's tag prompt is its caption; its lyrics (lorad.captions.lyrics) are `[Instrumental]`
until some are written.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorad.captions.lyrics import problems as lyrics_problems
from lorad.datasets.formats import FORMATS

if TYPE_CHECKING:
    from lorad.datasets.export import Item, Plan

INSTRUMENTAL = "[Instrumental]"
LORA_CONFIG = {"r": 256, "lora_alpha": 32,
               "target_modules": ["speaker_embedder", "linear_q", "linear_k", "linear_v",
                                  "to_q", "to_k", "to_v", "to_out.0"],
               "use_rslora": True}
TRAIN, VALIDATION = "hf_train", "hf_validation"


def tags_of(caption: str) -> list[str]:
    """convert2hf_dataset.py splits the prompt on ", "; empty tags are dropped."""
    return [t.strip() for t in caption.replace("\n", " ").split(",") if t.strip()]


def example(p: Plan, item: Item) -> dict[str, Any]:
    return {"keys": item.name, "filename": f"{p.remote_root}/audio/{item.file}",
            "tags": tags_of(item.caption), "speaker_emb_path": "",
            "norm_lyrics": item.lyrics or INSTRUMENTAL, "recaption": {}}


def track_facts(path: str) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=codec_name,sample_rate,channels:format=duration", "-of",
                          "json", path], capture_output=True, text=True)
    if out.returncode != 0:
        return {}
    data = json.loads(out.stdout or "{}")
    stream = (data.get("streams") or [{}])[0]
    return {**stream, "duration": float(data.get("format", {}).get("duration") or 0)}


class AceStepFormat:
    name = "ace-step"
    media = frozenset({"audio"})

    def item_paths(self, p: Plan, item: Item) -> tuple[str, str | None]:
        return f"audio/{item.file}", f"audio/{item.name}_prompt.txt"

    def files(self, p: Plan) -> dict[str, str]:
        train = [i for i in p.items if i.split == "train"]
        val = [i for i in p.items if i.split == "val"]
        out = {f"audio/{i.name}_lyrics.txt": (i.lyrics or INSTRUMENTAL) + "\n" for i in p.items}
        out["lora_config.json"] = json.dumps(LORA_CONFIG, indent=2) + "\n"
        out["summary.json"] = json.dumps({
            "format": "ace-step", "train": len(train), "validation": len(val),
            "repeat_count": p.options.num_repeats,
            "train_examples": len(train) * p.options.num_repeats,
            "dataset_path": f"{p.remote_root}/{TRAIN}",
            "validation_path": f"{p.remote_root}/{VALIDATION}" if val else None,
            "lora_config_path": f"{p.remote_root}/lora_config.json"}, indent=2) + "\n"
        return out

    def write_more(self, p: Plan, folder: Path) -> None:
        """The `datasets` folders ACE-Step's trainer loads (load_from_disk)."""
        import datasets

        datasets.disable_progress_bars()
        train = [example(p, i) for i in p.items if i.split == "train"] * p.options.num_repeats
        val = [example(p, i) for i in p.items if i.split == "val"]
        for name, rows in ((TRAIN, train), (VALIDATION, val)):
            if rows:
                datasets.Dataset.from_list(rows).save_to_disk(str(folder / name))

    def problems(self, p: Plan) -> list[str]:
        """Each track as the profile says it must be, and a tag prompt for each."""
        problems = []
        profile = p.profile
        for item in p.items:
            if not tags_of(item.caption):
                problems.append(f"{item.name}: no tag prompt (its caption: comma-separated "
                                "tags such as 'lofi, mellow, piano, 70 bpm'): write one in "
                                "the Captions screen")
            problems += [f"{item.name}: lyrics: {why}" for why in
                         lyrics_problems(item.lyrics or "")]
            facts = track_facts(item.media_path) if item.media_path else {}
            if not facts:
                continue
            if profile.sample_rate and int(facts.get("sample_rate") or 0) != profile.sample_rate:
                problems.append(f"{item.name}: {facts.get('sample_rate')} Hz, not the "
                                f"profile's {profile.sample_rate}: reprocess it")
            if profile.channels and int(facts.get("channels") or 0) != profile.channels:
                problems.append(f"{item.name}: {facts.get('channels')} channel(s), not "
                                f"{profile.channels}: reprocess it")
            seconds = facts["duration"]
            low, high = profile.min_seconds or 0, profile.max_seconds or math.inf
            if not low - 0.5 <= seconds <= high + 0.5:
                problems.append(f"{item.name}: {seconds:.1f} s, outside the profile's "
                                f"{low:g}-{high:g} s: reprocess it")
        return problems

    def target_frames(self, p: Plan) -> list[int]:
        return [1]

    def items_per_epoch(self, p: Plan) -> int:
        return sum(1 for i in p.items if i.split == "train") * max(1, p.options.num_repeats)

    def batches_per_epoch(self, p: Plan) -> int:
        return math.ceil(self.items_per_epoch(p) / max(1, p.options.batch_size))


FORMATS.register(AceStepFormat.name, AceStepFormat())
