"""A loopback HTTP double of fal's queue API and CDN files (services.md §1 and §6).

    with fal_double(key=KEY, latency=Latency(queue_polls=1, run_polls=1)) as fal:
        client = Fal(fal.url)            # with FAL_KEY=KEY in the environment

Queue (needs `Authorization: Key <key>`, else 401):
  POST /{owner}/{app}[/{path}]           submit; the body is the model input. 200 {"status": "IN_QUEUE",
                                         "request_id", "status_url", "response_url", "cancel_url",
                                         "queue_position"} with the URLs under /{owner}/{app} only.
                                         Bad input: 422 {"detail": [{"loc": ["body", field], "msg", "type"}]}.
  GET  …/requests/{id}/status[?logs=1]   202 IN_QUEUE (queue_position) / 202 IN_PROGRESS (logs) /
                                         200 COMPLETED (logs, metrics, and error + error_type on failure);
                                         `logs` is null unless logs=1|true.
  GET  …/requests/{id}                   200 model output; a failed request answers with the model's error
                                         (status and body); after `result_ttl` s or :meth:`expire`: 404.
                                         Before COMPLETED: 400 (UNVERIFIED what fal does).
  PUT  …/requests/{id}/cancel            202 CANCELLATION_REQUESTED; 400 ALREADY_COMPLETED; 404 NOT_FOUND.
  "…" is owner/app, or the full endpoint id (fal's per-model OpenAPI lists that form too).
  POST /storage/auth/token?storage_type=fal-cdn-v3
                                         body {}: 200 {"token", "token_type": "Bearer", "base_url": the
                                         double's URL, "expires_at": ISO datetime `token_ttl` s ahead}.
Files (no key, like fal's CDN): GET /files/{name}: real tiny mp4s made with ffmpeg (a moving test
pattern and a static single colour), a png for flux-lora, and whatever was uploaded.
  POST /files/upload                     raw bytes; needs `Authorization: Bearer <a token issued above>`
                                         (else 401) and X-Fal-File-Name (else 400); stores them with their
                                         Content-Type under a fresh name: 200 {"access_url": …/files/{name}}.

A request answers IN_QUEUE for `queue_polls` status polls and `queue_seconds`, then IN_PROGRESS for
`run_polls` polls and `run_seconds`, then COMPLETED. :meth:`plan_next` shapes the next submission's
outcome (error, output kind, content type, file name, chunked serving). Faults: :meth:`fail_next`
(429 plain, 502/503/504 from the nginx ingress or from a runner, any status), :meth:`drop_next`
(close the connection without an answer, optionally after handling the request). `requests` logs
every request (with its headers; an upload's body as bytes); `submits` counts accepted submissions per
endpoint, `uploads` lists the names uploaded files are served under, `tokens` holds the storage tokens
the CDN accepts (clear it to revoke them).

Outputs follow the request the way fal's endpoints do: a Wan video has `num_frames` frames at
`frames_per_second` (the endpoint's defaults when not sent), and the Wan 2.2 LoRA endpoints then
interpolate by default (:func:`output_shape`), so 81 frames at 16 fps come back as 161 at 32 fps.
flux-lora answers one image per `num_images`, and with `sync_mode: true` as `data:` URIs instead of
file URLs.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import functools
import itertools
import json
import re
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import loopback

NGINX_503 = ("<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
             "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
             "</body>\r\n</html>\r\n")
RUNNER_ERRORS = {502: "runner_connection_refused", 503: "runner_scheduling_failure", 504: "request_timeout"}

WAN22_T2V = "fal-ai/wan/v2.2-a14b/text-to-video/lora"
WAN22_I2V = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
WAN21_T2V, WAN21_I2V, FLUX = "fal-ai/wan-t2v-lora", "fal-ai/wan-i2v-lora", "fal-ai/flux-lora"


# -- input schemas (services.md §2): (type, low, high, choices), required names ------------------------

def _wan22(i2v: bool) -> dict[str, tuple]:
    spec = {"prompt": (str,), "negative_prompt": (str,), "num_frames": (int, 17, 161),
            "frames_per_second": (int, 4, 60), "resolution": (str, None, None, ("480p", "580p", "720p")),
            "aspect_ratio": (str, None, None, ("16:9", "9:16", "1:1") + (("auto",) if i2v else ())),
            "seed": (int,), "num_inference_steps": (int, 2, 40), "guidance_scale": (float, 1, 10),
            "guidance_scale_2": (float, 1, 10), "shift": (float, 1, 10),
            "acceleration": (str, None, None, ("none", "regular")),
            "enable_safety_checker": (bool,), "enable_output_safety_checker": (bool,),
            "enable_prompt_expansion": (bool,), "reverse_video": (bool,),
            "interpolator_model": (str, None, None, ("none", "film", "rife")),
            "num_interpolated_frames": (int, 0, 4), "adjust_fps_for_interpolation": (bool,),
            "video_quality": (str, None, None, ("low", "medium", "high", "maximum")),
            "video_write_mode": (str, None, None, ("fast", "balanced", "small"))}
    if i2v:
        spec.update(image_url=(str,), end_image_url=(str,))
    return spec


def _wan21(i2v: bool) -> dict[str, tuple]:
    spec = {"prompt": (str,), "negative_prompt": (str,), "num_frames": (int, 81, 100),
            "frames_per_second": (int, 5, 24), "num_inference_steps": (int, 2, 40), "seed": (int,),
            "resolution": (str, None, None, ("480p", "720p") if i2v else ("480p", "580p", "720p")),
            "aspect_ratio": (str, None, None, ("auto", "16:9", "9:16", "1:1") if i2v else ("9:16", "16:9")),
            "turbo_mode": (bool,), "enable_safety_checker": (bool,), "enable_prompt_expansion": (bool,),
            "reverse_video": (bool,)}
    if i2v:
        spec.update(image_url=(str,), shift=(float, 1, 10), guide_scale=(float, 1, 10))
    return spec


# fal's image size presets: fal-ai/fal projects/fal/src/fal/toolkit/image/image.py IMAGE_SIZE_PRESETS;
# a custom size is that file's ImageSize {width, height}: ints, 0 < side <= 14142, each 512 if left out.
IMAGE_SIZE_PRESETS = {"square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
                      "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768),
                      "landscape_16_9": (1024, 576)}
IMAGE_SIDE_MAX = 14142

# flux-lora's input: FALJS-GEN image/zod.gen.ts `zFluxLoraInput` (image_size a preset or ImageSize,
# num_images 1-4, sync_mode), plus `acceleration` "none" | "regular" (default "none") from fal-js
# libs/client/src/types/endpoints.ts `FluxLoraInput` (commit 381105e1, 2026-08-02).
FLUX_FIELDS: dict[str, tuple] = {
    "prompt": (str,), "num_images": (int, 1, 4), "num_inference_steps": (int, 1, 50),
    "guidance_scale": (float, 0, 35), "seed": (int,), "output_format": (str, None, None, ("jpeg", "png")),
    "enable_safety_checker": (bool,), "sync_mode": (bool,),
    "acceleration": (str, None, None, ("none", "regular"))}

# Captioning endpoints (text out).
# fal-ai/marlin: https://fal.ai/models/fal-ai/marlin/llms.txt and fal-js endpoints.ts `MarlinInput` (L41327):
# video_url and prompt required, max_tokens 64-4096 (default 2048), do_sample (false), temperature 0-2 and
# top_p (used only when sampling); no seed. Output `MarlinOutput` (L41353): {scene, events: [{start, end,
# text?}], text}, no usage.
# openrouter/router/video and /vision: https://fal.ai/models/openrouter/router/vision/llms.txt and fal-js
# `VideoInput` (L64211) / `RouterVisionInput` (L51441): video_urls / image_urls (lists), prompt and model
# required, system_prompt, max_tokens, temperature 0-2 (default 1), reasoning. Output {output, usage:
# {prompt_tokens, completion_tokens, cost}} (the docs' example; `cost` in USD). Their requests live under
# owner/app `openrouter/router` (fal_client client.py AppId.from_endpoint_id), as for every endpoint here.
MARLIN, ROUTER_VIDEO, ROUTER_VISION = "fal-ai/marlin", "openrouter/router/video", "openrouter/router/vision"
MARLIN_FIELDS: dict[str, tuple] = {"video_url": (str,), "prompt": (str,), "max_tokens": (int, 64, 4096),
                                   "do_sample": (bool,), "temperature": (float, 0, 2), "top_p": (float, 0, 1)}


def _router(media_field: str) -> dict[str, tuple]:
    return {media_field: (list,), "prompt": (str,), "system_prompt": (str,), "model": (str,),
            "max_tokens": (int, 1, None), "temperature": (float, 0, 2), "reasoning": (bool,)}


TEXT_ENDPOINTS = (MARLIN, ROUTER_VIDEO, ROUTER_VISION)
MEDIA_FIELDS = {MARLIN: "video_url", ROUTER_VIDEO: "video_urls", ROUTER_VISION: "image_urls"}

SCHEMAS: dict[str, tuple[dict[str, tuple], tuple[str, ...], bool]] = {  # fields, required, lora transformer
    MARLIN: (MARLIN_FIELDS, ("video_url", "prompt"), False),
    ROUTER_VIDEO: (_router("video_urls"), ("video_urls", "prompt", "model"), False),
    ROUTER_VISION: (_router("image_urls"), ("image_urls", "prompt", "model"), False),
    WAN22_T2V: (_wan22(False), ("prompt",), True),
    WAN22_I2V: (_wan22(True), ("prompt", "image_url"), True),
    WAN21_T2V: (_wan21(False), ("prompt",), False),
    WAN21_I2V: (_wan21(True), ("prompt", "image_url"), False),
    FLUX: (FLUX_FIELDS, ("prompt",), False),
}

# What an endpoint does with what it was not sent. Wan 2.1 LoRA: `num_frames` 81, `frames_per_second` 16
# (FALJS-GEN video/zod.gen.ts `zWanT2vLoraInput`, `zWanI2vLoraInput`). Wan 2.2 A14B LoRA: the same, and
# frame interpolation on by default: `interpolator_model` "film", `num_interpolated_frames` 1 ("Number of
# frames to interpolate between each pair of generated frames"), `adjust_fps_for_interpolation` true ("the
# number of frames per second will be multiplied by the number of interpolated frames plus one") -- fal-js
# libs/client/src/types/endpoints.ts `WanV22A14bTextToVideoLoraInput` / `WanV22A14bImageToVideoLoraInput`
# (commit 381105e1) and https://fal.ai/models/fal-ai/wan/v2.2-a14b/image-to-video/llms.txt.
VIDEO_DEFAULTS: dict[str, dict[str, Any]] = {
    WAN21_T2V: {"num_frames": 81, "frames_per_second": 16},
    WAN21_I2V: {"num_frames": 81, "frames_per_second": 16},
    **{e: {"num_frames": 81, "frames_per_second": 16, "interpolator_model": "film",
           "num_interpolated_frames": 1, "adjust_fps_for_interpolation": True}
       for e in (WAN22_T2V, WAN22_I2V)},
}


def output_shape(endpoint_id: str, arguments: dict[str, Any]) -> tuple[int, int]:
    """(frames, fps) of the video a Wan endpoint returns for `arguments`: k frames interpolated between
    each pair of the N generated ones make (N - 1) * (k + 1) + 1, and the fps is multiplied by k + 1
    when `adjust_fps_for_interpolation` (see VIDEO_DEFAULTS for the sources)."""
    p = {**VIDEO_DEFAULTS[endpoint_id], **arguments}
    frames, fps = p["num_frames"], p["frames_per_second"]
    between = p.get("num_interpolated_frames", 0) if p.get("interpolator_model", "none") != "none" else 0
    if between:
        frames = (frames - 1) * (between + 1) + 1
        fps = fps * (between + 1) if p.get("adjust_fps_for_interpolation") else fps
    return frames, fps


def validate(endpoint_id: str, body: Any) -> list[dict[str, Any]]:
    """Pydantic-style error items, as fal's 422 `detail` list."""
    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type",
                 "input": body}]
    fields, required, transformer = SCHEMAS[endpoint_id]
    errors = [{"loc": ["body", name], "msg": "field required", "type": "value_error.missing"}
              for name in required if name not in body]
    for name, value in body.items():
        if name == "loras":
            errors += _check_loras(value, transformer)
        elif name == "image_size" and endpoint_id == FLUX:
            errors += _check_image_size(value)
        elif name in fields:
            errors += _check(["body", name], value, *fields[name])
    return errors


def _check(loc: list[Any], value: Any, kind: type, low: float | None = None, high: float | None = None,
           choices: tuple = ()) -> list[dict[str, Any]]:
    kinds = (int, float) if kind is float else (kind,)
    if (kind is not bool and isinstance(value, bool)) or not isinstance(value, kinds):
        return [{"loc": loc, "msg": f"Input should be a valid {kind.__name__}",
                 "type": f"{kind.__name__}_type", "input": value}]
    if choices and value not in choices:
        return [{"loc": loc, "msg": "Input should be " + ", ".join(repr(c) for c in choices),
                 "type": "literal_error", "input": value, "ctx": {"expected": list(choices)}}]
    if low is not None and value < low:
        return [{"loc": loc, "msg": f"Input should be greater than or equal to {low}",
                 "type": "greater_than_equal", "input": value, "ctx": {"ge": low}}]
    if high is not None and value > high:
        return [{"loc": loc, "msg": f"Input should be less than or equal to {high}",
                 "type": "less_than_equal", "input": value, "ctx": {"le": high}}]
    return []


def _check_image_size(value: Any) -> list[dict[str, Any]]:
    """A preset name or an ImageSize object (IMAGE_SIZE_PRESETS' source)."""
    loc = ["body", "image_size"]
    if isinstance(value, str):
        return _check(loc, value, str, None, None, tuple(IMAGE_SIZE_PRESETS))
    if not isinstance(value, dict):
        return [{"loc": loc, "msg": "Input should be a valid dictionary or one of the presets",
                 "type": "union_type", "input": value}]
    errors: list[dict[str, Any]] = []
    for side in ("width", "height"):
        if side in value:
            errors += _check([*loc, side], value[side], int, 1, IMAGE_SIDE_MAX)
    return errors


def _check_loras(value: Any, transformer: bool) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return [{"loc": ["body", "loras"], "msg": "Input should be a valid list", "type": "list_type",
                 "input": value}]
    errors: list[dict[str, Any]] = []
    for i, lora in enumerate(value):
        loc = ["body", "loras", i]
        if not isinstance(lora, dict):
            errors.append({"loc": loc, "msg": "Input should be a valid dictionary", "type": "dict_type"})
            continue
        if "path" not in lora:
            errors.append({"loc": [*loc, "path"], "msg": "field required", "type": "value_error.missing"})
        else:
            errors += _check([*loc, "path"], lora["path"], str)
        if "scale" in lora:
            errors += _check([*loc, "scale"], lora["scale"], float, 0, 4)
        if transformer and "transformer" in lora:
            errors += _check([*loc, "transformer"], lora["transformer"], str, None, None,
                             ("high", "low", "both"))
    return errors


# -- media ------------------------------------------------------------------------------------------------

# "motion" changes as a generated clip does (mean frame difference about 1% of the range, above
# the 0.003 of lorad's quality checks; testsrc's one small moving square is 0.1%).
CLIP_SOURCES = {"motion": "testsrc2=size=160x288:rate={fps}",
                "static": "color=c=0x336699:size=160x288:rate={fps}"}


@functools.cache
def clip(kind: str, frames: int, fps: int, hue: int = 0) -> bytes:
    """A tiny real mp4 (160x288) of `frames` frames at `fps`: a moving test pattern or one colour;
    `hue` turns the colours (requests with other seeds give other videos, as a model does)."""
    source = CLIP_SOURCES[kind].format(fps=fps) + (f",hue=h={hue}" if hue else "")
    with tempfile.TemporaryDirectory(prefix="fal-double-") as tmp:
        path = Path(tmp) / f"{kind}.mp4"
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        source, "-frames:v", str(frames), "-c:v", "libx264",
                        "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
        return path.read_bytes()


@functools.cache
def media() -> dict[str, bytes]:
    """Tiny real outputs, made once per test run: 160x288, 16 fps, 17 frames."""
    out = {kind: clip(kind, 17, 16) for kind in CLIP_SOURCES}
    with tempfile.TemporaryDirectory(prefix="fal-double-") as tmp:
        image = Path(tmp) / "image.png"
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc=size=64x64", "-frames:v", "1", str(image)], check=True)
        out["image"] = image.read_bytes()
    out["broken"] = b"\x00\x00\x00\x18ftypmp42" + bytes(4096)  # a cut-off mp4: unreadable
    return out


# -- state ------------------------------------------------------------------------------------------------

@dataclass
class Latency:
    queue_polls: int = 1  # status polls answered IN_QUEUE
    run_polls: int = 1  # status polls answered IN_PROGRESS
    queue_seconds: float = 0.0  # and at least this long in each state
    run_seconds: float = 0.0


@dataclass
class Plan:
    """What the next submission turns into."""

    output: str = "motion"  # motion | static (mp4) | image (png) | broken (not readable)
    content_type: str | None = None  # served and reported; default from the output
    file_name: str | None = None  # reported in the result JSON only
    chunked: bool = False  # serve the file without Content-Length
    error: str | None = None  # COMPLETED with this error
    error_type: str = "runner_disconnected"
    error_status: int = 503  # what the result URL answers for a failed request
    honor_cancel: bool = True  # an IN_PROGRESS request stops at the next poll after a cancel
    text: str | None = None  # a captioning endpoint's answer (default: one naming the file it read)


@dataclass
class FakeRequest:
    id: str
    endpoint_id: str
    app: str
    arguments: dict[str, Any]
    plan: Plan
    latency: Latency
    state: str = "IN_QUEUE"
    polls: int = 0  # status polls answered in the current state
    since: float = field(default_factory=time.monotonic)
    completed_at: float | None = None
    error: str | None = None
    error_type: str | None = None
    cancel_requested: bool = False
    expired: bool = False
    logs: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # names of the output files (one per image)


@dataclass
class Recorded:
    t: float
    method: str
    path: str
    body: Any
    authorized: bool
    auth_sent: bool  # any Authorization header at all
    status: int = 0  # 0: connection dropped
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class _Fault:
    status: int
    ingress: bool
    headers: dict[str, str]
    body: Any
    match: str | None


class FalDouble:
    def __init__(self, key: str = "fal_test_key_0123:abcdef", latency: Latency | None = None,
                 result_ttl: float = 3600.0):
        self.key = key
        self.latency = latency or Latency()
        self.result_ttl = result_ttl
        self.requests: list[Recorded] = []
        self.submits: collections.Counter[str] = collections.Counter()
        self.jobs: dict[str, FakeRequest] = {}
        self.files: dict[str, tuple[bytes, str, bool]] = {}  # name -> (data, content type, chunked)
        self.tokens: set[str] = set()  # storage tokens the CDN accepts
        self.token_ttl = 3600.0  # s from issue to a token's expires_at
        self.uploads: list[str] = []  # file names of accepted uploads, in order
        self.lock = threading.RLock()
        self._plans: list[Plan] = []
        self._faults: list[_Fault] = []
        self._drops: list[tuple[bool, str | None]] = []
        self._holds: list[tuple[str | None, threading.Event]] = []
        self._seeds = itertools.count(1000)
        self._media = media()
        self._server = loopback.Server(_handler(self), "fal-double")
        self.url = self._server.url
        self.url_base = self.url  # where returned URLs point (change it to test the client's origin check)

    def start_server(self) -> None:
        self._server.start()

    def stop_server(self) -> None:
        self._server.stop()

    # -- control ------------------------------------------------------------------------------------------

    def plan_next(self, **fields: Any) -> Plan:
        with self.lock:
            plan = Plan(**fields)
            self._plans.append(plan)
            return plan

    def fail_next(self, status: int, n: int = 1, *, ingress: bool = True, match: str | None = None,
                  headers: dict[str, str] | None = None, body: Any = None) -> None:
        """Answer the next `n` requests (whose "METHOD path" contains `match`) with `status`. 502/503/504
        come from nginx (HTML, no x-fal-request-id) unless `ingress=False` (a runner's JSON error)."""
        with self.lock:
            self._faults += [_Fault(status, ingress, dict(headers or {}), body, match) for _ in range(n)]

    def drop_next(self, n: int = 1, *, applied: bool = False, match: str | None = None) -> None:
        """Close the connection without an answer; `applied`: handle the request first."""
        with self.lock:
            self._drops += [(applied, match)] * n

    def hold_next(self, match: str | None = None) -> threading.Event:
        """Handle the next request (whose "METHOD path" contains `match`) but hold its answer
        back until the returned event is set: a daemon killed meanwhile never hears it."""
        gate = threading.Event()
        with self.lock:
            self._holds.append((match, gate))
        return gate

    def expire(self, request_id: str) -> None:
        with self.lock:
            self.jobs[request_id].expired = True

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    # -- storage ------------------------------------------------------------------------------------------

    def _storage_token(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        kind = (query.get("storage_type") or [""])[0]
        if kind != "fal-cdn-v3":
            return 400, {"detail": f"Unsupported storage type {kind!r}"}
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        expires = datetime.now(UTC) + timedelta(seconds=self.token_ttl)
        return 200, {"token": token, "token_type": "Bearer", "base_url": self.url_base,
                     "expires_at": expires.isoformat()}

    def _upload(self, headers: dict[str, str], data: bytes) -> tuple[int, Any]:
        """POST /files/upload: `headers` with lower-case names."""
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return 401, {"detail": "Invalid or expired token"}
        name = headers.get("x-fal-file-name", "")
        if not name:
            return 400, {"detail": "Missing X-Fal-File-Name header"}
        stored = f"{uuid.uuid4().hex[:12]}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:100]}"
        self.files[stored] = (data, headers.get("content-type") or "application/octet-stream", False)
        self.uploads.append(stored)
        return 200, {"access_url": f"{self.url_base}/files/{stored}"}

    # -- queue --------------------------------------------------------------------------------------------

    def _urls(self, job: FakeRequest) -> dict[str, str]:
        base = f"{self.url_base}/{job.app}/requests/{job.id}"
        return {"request_id": job.id, "response_url": base, "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel"}

    def _unfetchable(self, endpoint_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A captioner fetches its media first: a URL that serves nothing is fal's 422 `file_download_error`
        (https://fal.ai/docs/model-apis/errors; the type list as summarised there)."""
        field_name = MEDIA_FIELDS.get(endpoint_id)
        value = body.get(field_name) if field_name else None
        urls = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        prefix = f"{self.url_base}/files/"
        return [{"loc": ["body", field_name] + ([i] if isinstance(value, list) else []),
                 "msg": "Failed to download the file. Please check if the URL is accessible.",
                 "type": "file_download_error", "input": url}
                for i, url in enumerate(urls)
                if not (isinstance(url, str) and url.startswith(prefix) and url[len(prefix):] in self.files)]

    def _submit(self, endpoint_id: str, body: Any) -> tuple[int, Any]:
        if endpoint_id not in SCHEMAS:
            return 404, {"detail": f"Application '{endpoint_id}' not found"}
        errors = validate(endpoint_id, body) or (self._unfetchable(endpoint_id, body)
                                                 if endpoint_id in TEXT_ENDPOINTS else [])
        if errors:
            return 422, {"detail": errors}
        parts = endpoint_id.split("/")
        plan = self._plans.pop(0) if self._plans else Plan()
        job = FakeRequest(str(uuid.uuid4()), endpoint_id, "/".join(parts[:2]), body, plan,
                          Latency(**vars(self.latency)))
        self.jobs[job.id] = job
        self.submits[endpoint_id] += 1
        return 200, {"status": "IN_QUEUE", **self._urls(job), "queue_position": self._position(job)}

    def _position(self, job: FakeRequest) -> int:
        queued = [j for j in self.jobs.values() if j.state == "IN_QUEUE"]
        return queued.index(job) if job in queued else 0

    def _log(self, job: FakeRequest, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{len(job.logs):06d}"
        job.logs.append({"message": message, "level": "INFO", "source": "USER", "timestamp": stamp})

    def _advance(self, job: FakeRequest) -> None:
        now, lat = time.monotonic(), job.latency
        while True:
            waited = now - job.since
            if job.state == "IN_QUEUE" and job.polls >= lat.queue_polls and waited >= lat.queue_seconds:
                job.state, job.polls, job.since = "IN_PROGRESS", 0, now
                self._log(job, "Loading LoRA weights")
            elif job.state == "IN_PROGRESS" and (job.cancel_requested and job.plan.honor_cancel
                                                 or job.polls >= lat.run_polls and waited >= lat.run_seconds):
                self._complete(job)
            else:
                return

    def _complete(self, job: FakeRequest, cancelled: bool = False) -> None:
        job.state, job.completed_at = "COMPLETED", time.monotonic()
        if cancelled or job.cancel_requested:
            job.error, job.error_type = "Request cancelled", "request_cancelled"  # UNVERIFIED wording
        elif job.plan.error:
            job.error, job.error_type = job.plan.error, job.plan.error_type
        elif job.endpoint_id in TEXT_ENDPOINTS:
            self._log(job, "Generating caption")
        else:
            self._log(job, "Writing video")
            kind = job.plan.output
            ext = ".png" if kind == "image" else ".mp4"
            ctype = job.plan.content_type or ("image/png" if kind == "image" else "video/mp4")
            if kind in CLIP_SOURCES and job.endpoint_id in VIDEO_DEFAULTS:
                seed = job.arguments.get("seed")
                hue = seed % 360 if isinstance(seed, int) and kind == "motion" else 0
                data = clip(kind, *output_shape(job.endpoint_id, job.arguments), hue)
            else:
                data = self._media[kind]
            count = job.arguments.get("num_images", 1) if job.endpoint_id == FLUX else 1
            for _ in range(count):
                name = f"{uuid.uuid4().hex[:12]}_output{ext}"
                self.files[name] = (data, ctype, job.plan.chunked)
                job.files.append(name)

    def _status(self, job: FakeRequest, query: dict[str, list[str]]) -> tuple[int, Any]:
        self._advance(job)
        with_logs = (query.get("logs") or ["0"])[0].lower() in ("1", "true")
        body: dict[str, Any] = {"status": job.state, **self._urls(job)}
        if job.state == "IN_QUEUE":
            body["queue_position"] = self._position(job)
        else:
            if job.state == "IN_PROGRESS":
                self._log(job, f"Sampling step {job.polls + 1}")
            body["logs"] = list(job.logs) if with_logs else None
        if job.state == "COMPLETED":
            body["metrics"] = {"inference_time": 1.5}
            if job.error:
                body.update(error=job.error, error_type=job.error_type)
        job.polls += 1
        return (200 if job.state == "COMPLETED" else 202), body

    def _result(self, job: FakeRequest) -> tuple[int, Any, dict[str, str]]:
        if job.state != "COMPLETED":
            return 400, {"detail": "Request is still in progress"}, {}
        if job.error:
            status = job.plan.error_status if job.error_type != "request_cancelled" else 400
            headers = {"X-Fal-Error-Type": str(job.error_type), "x-fal-request-id": job.id}
            return status, {"detail": job.error, "error_type": job.error_type}, headers
        if job.endpoint_id in TEXT_ENDPOINTS:
            return 200, self._caption(job), {}
        seed = job.arguments.get("seed", next(self._seeds))
        if job.plan.output == "image":
            images = [{"url": self._file_url(job, name), "width": 64, "height": 64,
                       "content_type": self.files[name][1], "file_name": job.plan.file_name or name}
                      for name in job.files]
            return 200, {"images": images, "seed": seed, "prompt": job.arguments.get("prompt"),
                         "timings": {"inference": 1.2}, "has_nsfw_concepts": [False] * len(images)}, {}
        name = job.files[0]
        data, ctype, _ = self.files[name]
        return 200, {"video": {"url": self._file_url(job, name), "content_type": ctype,
                               "file_name": job.plan.file_name or name, "file_size": len(data)},
                     "seed": seed, "prompt": job.arguments.get("prompt")}, {}

    def _caption(self, job: FakeRequest) -> dict[str, Any]:
        """A captioner's answer: the planned text, or one that names the file it read (so a test can tell
        which clip a caption came from), opening as models like to ("The video shows ...")."""
        value = job.arguments[MEDIA_FIELDS[job.endpoint_id]]
        url = value[0] if isinstance(value, list) else value
        stored = url.rsplit("/", 1)[-1]
        seen = stored.split("_", 1)[-1].rsplit(".", 1)[0]  # the uploaded file's own name
        text = job.plan.text if job.plan.text is not None else (
            f"The video shows {seen} parked on a quiet street, the camera slowly pushing in, soft "
            "morning light.")
        if job.endpoint_id == MARLIN:
            events = [{"start": 0.0, "end": 1.5, "text": "the camera pushes in"}]
            return {"scene": text, "events": events,
                    "text": text + "\n<0.0 - 1.5> the camera pushes in"}
        prompt_tokens = len(job.arguments.get("prompt", "")) // 4 + 3000
        completion_tokens = len(text.split()) * 2
        cost = round(prompt_tokens * 0.3e-6 + completion_tokens * 2.5e-6, 8)  # gemini-2.5-flash's rates
        return {"output": text, "usage": {"prompt_tokens": prompt_tokens,
                                          "completion_tokens": completion_tokens, "cost": cost}}

    def _file_url(self, job: FakeRequest, name: str) -> str:
        """Where an output is: on the CDN, or with flux-lora's `sync_mode` the bytes themselves ("If `True`,
        the media will be returned as a data URI", FALJS-GEN image/zod.gen.ts `zFluxLoraInput.sync_mode`)."""
        if job.endpoint_id == FLUX and job.arguments.get("sync_mode") is True:
            data, ctype, _ = self.files[name]
            return f"data:{ctype};base64,{base64.b64encode(data).decode()}"
        return f"{self.url_base}/files/{name}"

    def _cancel(self, job: FakeRequest | None) -> tuple[int, Any]:
        if job is None:
            return 404, {"status": "NOT_FOUND"}
        if job.state == "COMPLETED":
            return 400, {"status": "ALREADY_COMPLETED"}
        if job.state == "IN_QUEUE":
            self._complete(job, cancelled=True)  # removed from the queue, never runs
        else:
            job.cancel_requested = True  # the runner is asked; the app decides
        return 202, {"status": "CANCELLATION_REQUESTED"}

    def _find(self, parts: list[str]) -> tuple[FakeRequest | None, list[str]]:
        """The request named by …/requests/{id}[/rest], with … owner/app or the full endpoint id."""
        i = parts.index("requests")
        job = self.jobs.get(parts[i + 1]) if len(parts) > i + 1 else None
        prefix = "/".join(parts[:i])
        if job is None or prefix not in (job.app, job.endpoint_id):
            return None, parts[i + 2:]
        done = job.completed_at
        expired = job.expired or (done is not None and time.monotonic() - done >= self.result_ttl)
        return (None if expired else job), parts[i + 2:]

    def route(self, method: str, target: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        split = urlsplit(target)
        parts = [p for p in split.path.split("/") if p]
        if method == "POST" and parts == ["storage", "auth", "token"]:
            status, payload = self._storage_token(parse_qs(split.query))
            return status, payload, {}
        if method == "POST":
            status, payload = self._submit("/".join(parts), body)
            return status, payload, {}
        if "requests" not in parts:
            return 404, {"detail": "Not Found"}, {}
        job, rest = self._find(parts)
        if method == "PUT" and rest == ["cancel"]:
            status, payload = self._cancel(job)
            return status, payload, {}
        if job is None:
            return 404, {"detail": "Request not found"}, {}
        if method == "GET" and rest == ["status"]:
            status, payload = self._status(job, parse_qs(split.query))
            return status, payload, {}
        if method == "GET" and rest == []:
            return self._result(job)
        return 405, {"detail": "Method Not Allowed"}, {}

    def fault(self, fault: _Fault) -> tuple[int, Any, dict[str, str]]:
        headers = dict(fault.headers)
        if fault.body is not None:
            return fault.status, fault.body, headers
        if fault.status in RUNNER_ERRORS and fault.ingress:
            return fault.status, NGINX_503.replace("503 Service Temporarily Unavailable",
                                                   f"{fault.status} Error"), headers
        if fault.status in RUNNER_ERRORS:
            kind = RUNNER_ERRORS[fault.status]
            headers.update({"X-Fal-Error-Type": kind, "x-fal-request-id": str(uuid.uuid4())})
            return fault.status, {"detail": kind.replace("_", " ").capitalize(), "error_type": kind}, headers
        return fault.status, {"detail": "Too many requests" if fault.status == 429 else "Error"}, headers


def _handler(double: FalDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(loopback.Handler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            uploading = self.command == "POST" and urlsplit(self.path).path == "/files/upload"
            try:
                body = raw if uploading else json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            authorized = self.headers.get("Authorization") == f"Key {double.key}"
            headers = {name.lower(): value for name, value in self.headers.items()}
            record = Recorded(time.monotonic(), self.command, self.path, body, authorized,
                              "Authorization" in self.headers, headers=headers)
            what = f"{self.command} {self.path}"
            with double.lock:
                double.requests.append(record)
                drop = next((d for d in double._drops if d[1] is None or d[1] in what), None)
                if drop is not None:
                    double._drops.remove(drop)
                    if drop[0] and uploading:
                        double._upload(headers, raw)
                    elif drop[0] and authorized:
                        double.route(self.command, self.path, body)
                    self.close_connection = True
                    return
                fault = next((f for f in double._faults if f.match is None or f.match in what), None)
                if fault is not None:
                    double._faults.remove(fault)
                    status, payload, answer = double.fault(fault)
                elif uploading:
                    (status, payload), answer = double._upload(headers, raw), {}
                elif self.path.startswith("/files/"):
                    record.status = self._file(self.path.removeprefix("/files/").split("?")[0])
                    return
                elif not self.headers.get("Authorization", "").startswith("Key "):
                    status, payload, answer = 401, {"detail": "Missing authorization header"}, {}
                elif not authorized:
                    status, payload, answer = 401, {"detail": "Invalid API key"}, {}
                else:
                    status, payload, answer = double.route(self.command, self.path, body)
                record.status = status
                hold = next((h for h in double._holds if h[0] is None or h[0] in what), None)
                if hold is not None:
                    double._holds.remove(hold)
            if hold is not None:
                hold[1].wait(60)  # outside the lock: the double goes on answering others
            self._send(status, payload, answer)

        def _file(self, name: str) -> int:
            entry = double.files.get(name)
            if entry is None:
                self._send(404, {"detail": "File not found"}, {})
                return 404
            data, ctype, chunked = entry
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(data), 4096):
                    piece = data[i:i + 4096]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            return 200

        def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
            if isinstance(payload, str):
                data, kind = payload.encode(), "text/html"
            else:
                data, kind = json.dumps(payload).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def fal_double(key: str = "fal_test_key_0123:abcdef", latency: Latency | None = None,
               result_ttl: float = 3600.0) -> contextlib.AbstractContextManager[FalDouble]:
    """A running double on 127.0.0.1; `latency` sets how long each request queues and runs."""
    return loopback.running(FalDouble(key, latency, result_ttl))
