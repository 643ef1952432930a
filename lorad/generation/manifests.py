"""How a generation or a chain was made, for whoever debugs it later: lorad's and ffmpeg's
versions, the endpoint and service, the base model, the LoRA's URL (pinned to the Hub commit it
was published in; its checkpoint's SHA-256 is on the checkpoint), every effective
parameter (the service's defaults included), the frames asked and made, and the thresholds the
output checks used. Kept in the store (`generations.manifest`, `chains.manifest`) and written
beside the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorad.core import provenance
from lorad.generation import endpoints, loras
from lorad.generation.generations import Generation
from lorad.media import convert


def for_generation(g: Generation, lora: loras.Lora | None, checks: dict[str, Any],
                   expected: dict[str, Any]) -> dict[str, Any]:
    endpoint = endpoints.get(g.endpoint)
    effective = endpoint.effective(g.params)
    lora_info = None
    if lora is not None:
        lora_info = {"name": lora.name, "url": lora.url, "base_model": lora.base_model,
                     "expert": lora.expert, "scale": g.scale,
                     "checkpoint_id": lora.checkpoint_id}
    return {
        "lorad_manifest": 1, "kind": "generation", "generation_id": g.id,
        "tools": provenance.tools(),
        "service": g.service, "endpoint": g.endpoint, "request_id": g.request_id,
        "base_model": lora.base_model if lora else None, "lora": lora_info,
        "seed": g.seed, "prompt": g.prompt,
        "params_sent": g.params, "params_effective": effective,
        "inputs": {k: {"sha256": v.get("sha256"), "url": v.get("url")}
                   for k, v in g.inputs.items() if isinstance(v, dict)},
        "frames": {"asked": effective.get("num_frames"), "expected": expected.get("frames"),
                   "made": checks.get("frames"), "fps_expected": expected.get("fps"),
                   "fps_made": checks.get("fps"), "interpolation": expected.get("interpolation")},
        "checks": {"thresholds": checks.get("thresholds", {}), "ok": checks.get("ok"),
                   "problems": checks.get("problems", [])},
        "chain": {"chain_id": g.chain_id, "shot": g.shot_index + 1}
        if g.chain_id is not None and g.shot_index is not None else None,
    }


def for_chain(chain: Any, shots: list[Generation], final: Path,
              facts: convert.Probe) -> dict[str, Any]:
    spec = chain.spec
    return {
        "lorad_manifest": 1, "kind": "chain", "chain": chain.name, "tools": provenance.tools(),
        "endpoint": spec.endpoint, "lora": spec.lora, "scale": spec.scale,
        "chain_last_frame": spec.chain_last_frame, "seed_policy":
            "random" if spec.seed is None else f"{spec.seed} + shot index",
        "quantization_rule": "4n+1, nearest at or above duration x fps",
        "shots": [{"shot": i + 1, "generation_id": g.id, "prompt": g.prompt, "seed": g.seed,
                   "duration": spec.shots[i].duration,
                   "target_frames": chain.planned[i]["target_frames"],
                   "num_frames": chain.planned[i]["frames"],
                   "frames_made": g.checks.get("frames"), "fps_made": g.checks.get("fps"),
                   "start_image": g.inputs.get("image_url", {}).get("path")
                   if isinstance(g.inputs.get("image_url"), dict) else None,
                   "start_image_sha256": g.inputs.get("image_url", {}).get("sha256")
                   if isinstance(g.inputs.get("image_url"), dict) else None,
                   "output": g.output_path, "cost": g.cost} for i, g in enumerate(shots)],
        "output": {"path": str(final), "frames": facts.frames, "fps": facts.fps,
                   "width": facts.width, "height": facts.height},
        "cost": round(sum(g.cost or 0 for g in shots), 6),
    }
