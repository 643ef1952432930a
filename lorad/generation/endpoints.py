"""Generation endpoints as data: the service that runs each (lorad.generation.services),
parameter names, ranges, enums and defaults, the LoRA field, the price rule (services reference
§2 and §6) and what an output should be. Adding an endpoint is adding an entry here, or, for a
plugin service, `register` in its module.

What the service does with a parameter it was not sent matters: fal's Wan 2.2 LoRA endpoints
interpolate frames by default, so the output has more frames, at a higher fps, than asked
(:meth:`Endpoint.expected_output`), and a price depends on the resolution or image size that
applies. The `defaults` of an endpoint are the service's own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lorad.core import plugins
from lorad.core.errors import LoradError


class ParamError(LoradError):
    pass


# fal's image size presets and custom sizes: fal-ai/fal projects/fal/src/fal/toolkit/image/image.py
# (IMAGE_SIZE_PRESETS; ImageSize: width and height ints, 0 < side <= 14142, 512 when left out)
IMAGE_SIZES = {"square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
               "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768),
               "landscape_16_9": (1024, 576)}
IMAGE_SIDE = (1, 14142)
IMAGE_SIDE_DEFAULT = 512
MEGAPIXEL = 1_000_000  # pixels; services.md names no rounding, so fractions are priced as such


@dataclass(frozen=True)
class Param:
    kind: type | tuple  # int, float, str, bool
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    required: bool = False
    size: bool = False  # also takes an image size object {"width": W, "height": H}


def image_size_problems(name: str, value: Any) -> list[str]:
    """What is wrong with an image size object (fal's ImageSize)."""
    if not isinstance(value, dict):
        return [f"{name} must be one of {', '.join(IMAGE_SIZES)} or {{\"width\": W, "
                f"\"height\": H}} (e.g. --param 'image_size={{\"width\": 1280, \"height\": 720}}')"]
    problems = []
    unknown = sorted(set(value) - {"width", "height"})
    if unknown:
        problems.append(f"{name} takes width and height only, not {', '.join(unknown)}")
    low, high = IMAGE_SIDE
    for side in ("width", "height"):
        pixels = value.get(side, IMAGE_SIDE_DEFAULT)
        if isinstance(pixels, bool) or not isinstance(pixels, int):
            problems.append(f"{name} {side} must be a whole number of pixels, got {pixels!r}")
        elif not low <= pixels <= high:
            problems.append(f"{name} {side} must be {low}-{high}, got {pixels}")
    return problems


def image_dimensions(image_size: str | dict[str, Any]) -> tuple[int, int]:
    """(width, height) of a valid image size: a preset name or {width, height}."""
    if isinstance(image_size, dict):
        return (int(image_size.get("width", IMAGE_SIDE_DEFAULT)),
                int(image_size.get("height", IMAGE_SIDE_DEFAULT)))
    return IMAGE_SIZES[image_size]


def interpolated_frames(params: dict[str, Any]) -> int:
    """Frames the service adds between each pair of generated frames (0: none); `params` are
    the effective ones. An endpoint without `interpolator_model` does not interpolate."""
    if params.get("interpolator_model", "none") == "none":
        return 0
    return int(params.get("num_interpolated_frames") or 0)


@dataclass(frozen=True)
class Endpoint:
    """Prices: `price_per_second` of output video (num_frames / frames_per_second), else
    `price_per_megapixel` of each image (times num_images), else `price_per_output` times the
    request's `billing_units`. `price_verified` false: some number of the rule is not confirmed
    by the service (`price_note` says which), and `lorad gen`/`sweep` say so."""

    id: str
    media: str  # video | image | text (a caption)
    params: dict[str, Param]
    lora_transformer: bool = False  # Wan 2.2: each LoRA says which expert it applies to
    price_per_second: float | None = None  # of output video
    price_per_output: float | None = None
    price_per_megapixel: float | None = None  # of each image
    billing_units: Callable[[dict[str, Any]], float] | None = None  # of one request
    price_note: str = ""
    price_verified: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)  # the service's, for unsent params
    service: str = "fal"
    reads: str | None = None  # a captioning endpoint: the media it reads (video | image)

    def effective(self, args: dict[str, Any]) -> dict[str, Any]:
        """The parameters the service works with: what is sent, else its defaults."""
        return {**self.defaults, **args}

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
            if spec.size and not isinstance(value, str):
                problems += [f"{self.id}: {p}" for p in image_size_problems(name, value)]
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
        p = self.effective(args)
        if self.price_per_second is not None:
            frames = p.get("num_frames", 81)
            fps = p.get("frames_per_second", 16)
            return round(self.price_per_second * frames / fps, 6)
        if self.price_per_megapixel is not None:
            width, height = image_dimensions(p.get("image_size", "square_hd"))
            images = p.get("num_images", 1)
            return round(self.price_per_megapixel * width * height / MEGAPIXEL * images, 6)
        units = self.billing_units(p) if self.billing_units is not None else 1.0
        return round((self.price_per_output or 0.0) * units, 6)

    def expected_output(self, args: dict[str, Any]) -> dict[str, Any]:
        """What the output of a request should be, for the automatic checks: `frames` and `fps`
        of a video from the effective parameters (with `interpolation`, `asked_frames` and
        `asked_fps` when the service interpolates), and the `aspect_ratio` when one was asked."""
        expected: dict[str, Any] = {}
        p = self.effective(args)
        frames, fps = p.get("num_frames"), p.get("frames_per_second")
        if self.media == "video" and isinstance(frames, int) and isinstance(fps, (int, float)):
            expected.update(frames=frames, fps=float(fps))
            between = interpolated_frames(p)
            if between:
                # `between` new frames in each of the frames - 1 gaps (fal: "Number of frames to
                # interpolate between each pair of generated frames"); the fps grows alike when
                # adjust_fps_for_interpolation (services.md §2.1, §6)
                expected.update(frames=(frames - 1) * (between + 1) + 1, asked_frames=frames,
                                asked_fps=fps, interpolation=(
                                    f"{p['interpolator_model']}, {between} frame"
                                    f"{'s' if between > 1 else ''} between each pair"))
                if p.get("adjust_fps_for_interpolation"):
                    expected["fps"] = float(fps * (between + 1))
        if "aspect_ratio" in args:
            expected["aspect_ratio"] = args["aspect_ratio"]
        return expected


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


def _wan21_i2v_units(params: dict[str, Any]) -> float:
    """fal's WanI2vLoraInput (fal-js endpoints.ts): "480p is 0.5 billing units, and 720p is 1
    billing unit"; "If the number of frames is greater than 81, the video will be generated with
    1.25x more billing units" (services.md §2.2, §6). `params` are the effective ones."""
    units = 0.5 if params.get("resolution") == "480p" else 1.0
    return units * (1.25 if params.get("num_frames", 81) > 81 else 1.0)


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


# The services' defaults (services.md §2): Wan 2.1 LoRA from fal's zWanT2vLoraInput and
# zWanI2vLoraInput, Wan 2.2 A14B LoRA (frame interpolation on: film, 1 frame between each pair, fps
# adjusted) from WanV22A14b*LoraInput, flux-lora from FluxLoraInput (fal-js types).
_WAN21_T2V_DEFAULTS = {"num_frames": 81, "frames_per_second": 16, "resolution": "480p",
                       "aspect_ratio": "16:9"}
_WAN21_I2V_DEFAULTS = {"num_frames": 81, "frames_per_second": 16, "resolution": "720p",
                       "aspect_ratio": "16:9"}
_WAN22_DEFAULTS = {"num_frames": 81, "frames_per_second": 16, "resolution": "720p",
                   "interpolator_model": "film", "num_interpolated_frames": 1,
                   "adjust_fps_for_interpolation": True}
_FLUX_DEFAULTS = {"image_size": "landscape_4_3", "num_images": 1, "acceleration": "none"}

# -- captioning (lorad captions draft): text out, priced by tokens ---------------------------
# fal-ai/marlin: https://fal.ai/models/fal-ai/marlin/llms.txt and fal-js endpoints.ts
# `MarlinInput` (video_url and prompt required; max_tokens 64-4096, default 2048; do_sample,
# temperature 0-2, top_p; no seed), "$0.015 per 1000 tokens" (which tokens: not documented).
# openrouter/router/{video,vision}: https://fal.ai/models/openrouter/router/vision/llms.txt and
# fal-js `VideoInput`/`RouterVisionInput` (video_urls / image_urls lists, prompt, system_prompt,
# model, max_tokens, temperature 0-2, reasoning); billed by the chosen model's input and output
# tokens, and the result's `usage.cost` says what was charged.
MARLIN, ROUTER_VIDEO, ROUTER_VISION = ("fal-ai/marlin", "openrouter/router/video",
                                       "openrouter/router/vision")
POD_CAPTION_PREFIX = "pod/caption/"
TRAINER_SAMPLE = "trainer/sample"  # a [captioners.NAME] command on a pod (lorad.evaluation)
# OpenRouter list prices in $ per million tokens (input, output), for estimates before sending;
# what a request cost is read back from its result.
TOKEN_PRICES = {"google/gemini-2.5-flash": (0.30, 2.50), "google/gemini-2.5-pro": (1.25, 10.0)}
VIDEO_TOKENS_PER_SECOND = 300  # Gemini: 258 per sampled frame at 1 fps + 32 for audio
IMAGE_TOKENS = 1290  # Gemini, one image up to 1024x1024 (tiled above)
ESTIMATED_VIDEO_SECONDS = 10  # a clip's length is not in the request: priced as a 10 s clip


def _router_dollars(params: dict[str, Any]) -> float:
    """An estimate of one router request in dollars: the prompt at ~4 characters a token, the
    media at Gemini's token rates, and half of max_tokens of output."""
    price_in, price_out = TOKEN_PRICES.get(params.get("model", ""), max(TOKEN_PRICES.values()))
    text = len(params.get("prompt", "")) + len(params.get("system_prompt", ""))
    media = (len(params.get("video_urls", [])) * VIDEO_TOKENS_PER_SECOND
             * ESTIMATED_VIDEO_SECONDS + len(params.get("image_urls", [])) * IMAGE_TOKENS)
    tokens_in = text / 4 + media
    tokens_out = params.get("max_tokens", 300) / 2
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


def _marlin_thousands(params: dict[str, Any]) -> float:
    return params.get("max_tokens", 2048) / 1000  # priced at the output's upper bound


def _router(media_field: str) -> dict[str, Param]:
    return {media_field: Param(list, required=True), "prompt": Param(str, required=True),
            "system_prompt": Param(str), "model": Param(str, required=True),
            "max_tokens": Param(int, 1, 100_000), "temperature": Param((int, float), 0, 2),
            "reasoning": Param(bool)}


CAPTIONING = [
    Endpoint(MARLIN, "text",
             {"video_url": Param(str, required=True), "prompt": Param(str, required=True),
              "max_tokens": Param(int, 64, 4096), "do_sample": Param(bool),
              "temperature": Param((int, float), 0, 2), "top_p": Param((int, float), 0, 1)},
             price_per_output=0.015, billing_units=_marlin_thousands, price_verified=False,
             price_note="$0.015 per 1000 tokens; fal does not say which tokens count, so it is "
                        "priced at max_tokens of output",
             defaults={"max_tokens": 2048, "do_sample": False}),
    Endpoint(ROUTER_VIDEO, "text", _router("video_urls"), price_per_output=1.0,
             billing_units=_router_dollars, price_verified=False,
             price_note="the model's input and output tokens (an estimate before sending; the "
                        "charged cost is read from the result)",
             defaults={"temperature": 1, "reasoning": False}),
    Endpoint(ROUTER_VISION, "text", _router("image_urls"), price_per_output=1.0,
             billing_units=_router_dollars, price_verified=False,
             price_note="the model's input and output tokens (an estimate before sending; the "
                        "charged cost is read from the result)",
             defaults={"temperature": 1, "reasoning": False}),
]

ENDPOINTS: dict[str, Endpoint] = {e.id: e for e in [
    Endpoint("fal-ai/wan-t2v-lora", "video", _wan21(False), price_per_output=0.75,
             price_note="$0.75 per video", defaults=_WAN21_T2V_DEFAULTS),
    Endpoint("fal-ai/wan-i2v-lora", "video", _wan21(True), price_per_output=0.75,
             billing_units=_wan21_i2v_units, price_verified=False,
             price_note="$0.75 per billing unit, the unit price UNVERIFIED for I2V; a 720p "
                        "video is 1 unit, 480p 0.5, and more than 81 frames 1.25 times that",
             defaults=_WAN21_I2V_DEFAULTS),
    Endpoint("fal-ai/wan/v2.2-a14b/text-to-video/lora", "video", _wan22(False),
             lora_transformer=True, price_per_second=0.1,
             price_note="$0.10 per second of video (num_frames / frames_per_second)",
             defaults={**_WAN22_DEFAULTS, "aspect_ratio": "16:9"}),
    Endpoint("fal-ai/wan/v2.2-a14b/image-to-video/lora", "video", _wan22(True),
             lora_transformer=True, price_per_second=0.1, price_verified=False,
             price_note="$0.10 per second of video (num_frames / frames_per_second), "
                        "UNVERIFIED for I2V",
             defaults={**_WAN22_DEFAULTS, "aspect_ratio": "auto"}),
    Endpoint("fal-ai/flux-lora", "image",
             {"prompt": Param(str, required=True),
              "image_size": Param(str, choices=tuple(IMAGE_SIZES), size=True),
              "num_images": Param(int, 1, 4),
              "num_inference_steps": Param(int, 1, 50), "guidance_scale": Param((int, float), 0, 35),
              "seed": Param(int), "enable_safety_checker": Param(bool),
              "output_format": Param(str, choices=("jpeg", "png")), "sync_mode": Param(bool),
              "acceleration": Param(str, choices=("none", "regular"))},
             price_per_megapixel=0.035, defaults=_FLUX_DEFAULTS,
             price_note="$0.035 per megapixel of each image (num_images x image_size)"),
    *CAPTIONING,
    # what a trainer made by itself while it trained (lorad.training.samples): never sent
    Endpoint(TRAINER_SAMPLE, "audio", {"prompt": Param(str)}, price_per_output=0.0,
             service="trainer", price_note="made by the trainer during training: no cost"),
]}


def register(endpoint: Endpoint) -> Endpoint:
    """An endpoint of a generation service plugin (its module calls this when it loads)."""
    ENDPOINTS[endpoint.id] = endpoint
    return endpoint


_SOURCES: list[Callable[[], dict[str, Endpoint]]] = []
_PROBLEMS: list[Callable[[], dict[str, str]]] = []


def add_source(source: Callable[[], dict[str, Endpoint]],
               problems: Callable[[], dict[str, str]] | None = None) -> None:
    """Endpoints made from data when asked (a declared trainer's command on a pod), and the
    ids whose declaration is broken, with why (file, line and key)."""
    _SOURCES.append(source)
    if problems is not None:
        _PROBLEMS.append(problems)


def all_endpoints() -> dict[str, Endpoint]:
    """Every endpoint: the built-in ones, the plugins' and the declared ones."""
    plugins.load("generation_services")
    found = dict(ENDPOINTS)
    for source in _SOURCES:
        found.update(source())
    return found


def price_caveat(endpoint_id: str) -> str:
    """What to add to a price when the endpoint's price rule is not confirmed by the service."""
    endpoint = get(endpoint_id)
    if endpoint.price_verified:
        return ""
    page = f" at https://fal.ai/models/{endpoint.id}" if endpoint.service == "fal" else ""
    return (f"; the price is unverified: {endpoint.price_note}. Check the current price{page} "
            "before spending much")


def get(endpoint_id: str) -> Endpoint:
    if endpoint_id in ENDPOINTS:
        return ENDPOINTS[endpoint_id]
    found = all_endpoints()  # a plugin service, or a declaration, may bring it
    for problems in _PROBLEMS:
        why = problems().get(endpoint_id)
        if why:
            raise ParamError(why)
    if endpoint_id not in found:
        raise ParamError(f"unknown endpoint {endpoint_id!r}; known: {', '.join(found)}")
    return found[endpoint_id]
