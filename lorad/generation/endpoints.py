"""Generation endpoints as data: the service that runs each (lorad.generation.services),
parameter names, ranges and enums, the LoRA field, and the price per output (services reference
§2). Adding an endpoint is adding an entry here, or, for a plugin service, `register` in its
module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lorad.core import plugins
from lorad.core.errors import LoradError


class ParamError(LoradError):
    pass


@dataclass(frozen=True)
class Param:
    kind: type | tuple  # int, float, str, bool
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    id: str
    media: str  # video | image
    params: dict[str, Param]
    lora_transformer: bool = False  # Wan 2.2: each LoRA says which expert it applies to
    price_per_second: float | None = None  # of output video
    price_per_output: float | None = None
    price_note: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    service: str = "fal"

    def validate(self, args: dict[str, Any]) -> list[str]:
        problems = []
        for name, spec in self.params.items():
            if spec.required and name not in args:
                problems.append(f"{self.id}: {name} is required")
        for name, value in args.items():
            if name in ("loras",):
                continue
            spec = self.params.get(name)
            if spec is None:
                problems.append(f"{self.id}: unknown parameter {name!r} (known: "
                                f"{', '.join(sorted(self.params))})")
                continue
            kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
            if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
                problems.append(f"{self.id}: {name} must be {'/'.join(k.__name__ for k in kinds)}")
                continue
            if spec.choices and value not in spec.choices:
                problems.append(f"{self.id}: {name} must be one of {', '.join(map(str, spec.choices))}")
            if spec.low is not None and value < spec.low or spec.high is not None and value > spec.high:
                problems.append(f"{self.id}: {name} must be {spec.low}-{spec.high}, got {value}")
        for lora in args.get("loras", []):
            if not 0 <= float(lora.get("scale", 1.0)) <= 4:
                problems.append(f"{self.id}: LoRA scale must be 0-4")
            if self.lora_transformer and lora.get("transformer") not in ("high", "low", "both"):
                problems.append(f"{self.id}: each LoRA needs transformer high, low or both (sent "
                                "explicitly: the default is unverified)")
        return problems

    def price(self, args: dict[str, Any]) -> float:
        """Estimated cost of one request, before submitting."""
        if self.price_per_second is not None:
            frames = args.get("num_frames", self.defaults.get("num_frames", 81))
            fps = args.get("frames_per_second", self.defaults.get("frames_per_second", 16))
            return round(self.price_per_second * frames / fps, 6)
        return self.price_per_output or 0.0


def _wan21(i2v: bool) -> dict[str, Param]:
    p = {"prompt": Param(str, required=True), "negative_prompt": Param(str),
         "num_frames": Param(int, 81, 100), "frames_per_second": Param(int, 5, 24),
         "num_inference_steps": Param(int, 2, 40), "seed": Param(int),
         "turbo_mode": Param(bool), "enable_safety_checker": Param(bool),
         "enable_prompt_expansion": Param(bool), "reverse_video": Param(bool)}
    if i2v:
        p.update(image_url=Param(str, required=True),
                 resolution=Param(str, choices=("480p", "720p")),
                 aspect_ratio=Param(str, choices=("auto", "16:9", "9:16", "1:1")),
                 shift=Param((int, float), 1, 10), guide_scale=Param((int, float), 1, 10))
    else:
        p.update(resolution=Param(str, choices=("480p", "580p", "720p")),
                 aspect_ratio=Param(str, choices=("9:16", "16:9")))
    return p


def _wan22(i2v: bool) -> dict[str, Param]:
    p = {"prompt": Param(str, required=True), "negative_prompt": Param(str),
         "num_frames": Param(int, 17, 161), "frames_per_second": Param(int, 4, 60),
         "resolution": Param(str, choices=("480p", "580p", "720p")),
         "aspect_ratio": Param(str, choices=("16:9", "9:16", "1:1") + (("auto",) if i2v else ())),
         "seed": Param(int), "num_inference_steps": Param(int, 2, 40),
         "guidance_scale": Param((int, float), 1, 10), "guidance_scale_2": Param((int, float), 1, 10),
         "shift": Param((int, float), 1, 10), "acceleration": Param(str, choices=("none", "regular")),
         "enable_safety_checker": Param(bool), "enable_output_safety_checker": Param(bool),
         "enable_prompt_expansion": Param(bool),
         "interpolator_model": Param(str, choices=("none", "film", "rife")),
         "num_interpolated_frames": Param(int, 0, 4), "adjust_fps_for_interpolation": Param(bool),
         "reverse_video": Param(bool),
         "video_quality": Param(str, choices=("low", "medium", "high", "maximum")),
         "video_write_mode": Param(str, choices=("fast", "balanced", "small"))}
    if i2v:
        p.update(image_url=Param(str, required=True), end_image_url=Param(str))
    return p


ENDPOINTS: dict[str, Endpoint] = {e.id: e for e in [
    Endpoint("fal-ai/wan-t2v-lora", "video", _wan21(False), price_per_output=0.75,
             price_note="$0.75 per video", defaults={"num_frames": 81, "frames_per_second": 16}),
    Endpoint("fal-ai/wan-i2v-lora", "video", _wan21(True), price_per_output=0.75,
             price_note="$0.75 per video (UNVERIFIED for I2V)",
             defaults={"num_frames": 81, "frames_per_second": 16}),
    Endpoint("fal-ai/wan/v2.2-a14b/text-to-video/lora", "video", _wan22(False),
             lora_transformer=True, price_per_second=0.1, price_note="$0.10 per second of video",
             defaults={"num_frames": 81, "frames_per_second": 16}),
    Endpoint("fal-ai/wan/v2.2-a14b/image-to-video/lora", "video", _wan22(True),
             lora_transformer=True, price_per_second=0.1,
             price_note="$0.10 per second (UNVERIFIED for I2V)",
             defaults={"num_frames": 81, "frames_per_second": 16}),
    Endpoint("fal-ai/flux-lora", "image",
             {"prompt": Param(str, required=True), "image_size": Param(str, choices=(
                 "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3",
                 "landscape_16_9")), "num_images": Param(int, 1, 4),
              "num_inference_steps": Param(int, 1, 50), "guidance_scale": Param((int, float), 0, 35),
              "seed": Param(int), "enable_safety_checker": Param(bool),
              "output_format": Param(str, choices=("jpeg", "png")), "sync_mode": Param(bool)},
             price_per_output=0.035, price_note="~$0.035 per megapixel (UNVERIFIED)"),
]}


def register(endpoint: Endpoint) -> Endpoint:
    """An endpoint of a generation service plugin (its module calls this when it loads)."""
    ENDPOINTS[endpoint.id] = endpoint
    return endpoint


def get(endpoint_id: str) -> Endpoint:
    if endpoint_id not in ENDPOINTS:
        plugins.load("generation_services")  # a plugin service may bring its endpoints
    if endpoint_id not in ENDPOINTS:
        raise ParamError(f"unknown endpoint {endpoint_id!r}; known: {', '.join(ENDPOINTS)}")
    return ENDPOINTS[endpoint_id]
