"""Model profiles: what the trainer wants a clip to be (size, fps, frame count, crop, encoding).

Built-ins cover Wan 2.1/2.2 and a 1024 px image bucket; `[profiles.NAME]` tables in lorad.toml
add more or override, optionally starting from a built-in with `base = "..."`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from lorad.core.config import Config, ConfigError
from lorad.core.errors import LoradError

MEDIA = ("video", "image", "audio")
CROPS = ("fill", "pad")  # fill: scale to cover then center-crop; pad: fit inside then pad black
ORIENTATIONS = ("fixed", "match")  # match: swap width/height when the source's orientation differs


class ProfileError(LoradError):
    """An unknown profile name; the message lists the known ones."""


@dataclass(frozen=True)
class Profile:
    name: str
    media: str = "video"
    width: int = 480
    height: int = 848
    fps: float | None = 16.0
    frames: int | None = 41  # fixed 4n+1 count; None: largest 4n+1 the clip has, within min/max
    min_frames: int = 17
    max_frames: int = 81
    crop: str = "fill"
    orientation: str = "fixed"
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"  # quality is set by the CRF; a slower preset only makes 41 frames smaller
    pix_fmt: str = "yuv420p"
    audio: bool = False
    description: str = ""
    format: str = "musubi"  # the dataset format its trainer reads (lorad.datasets.formats)
    trainable: bool = True  # False: no trainer lorad drives can train it (inference only)
    # audio profiles (media = "audio"): what every track becomes (lorad.media.audio)
    sample_rate: int | None = None  # Hz
    channels: int | None = None
    min_seconds: float | None = None  # shorter: an error on that track
    max_seconds: float | None = None  # longer: trimmed to a window this long
    audio_bitrate: str = "320k"

    # -- rules ------------------------------------------------------------------------------
    def frames_for(self, available: int) -> int | None:
        """Frames to keep from a clip that gives `available` frames at the profile's fps, or
        None if it is too short."""
        if self.frames is not None:
            return self.frames if available >= self.frames else None
        n = largest_4n1(min(available, self.max_frames))
        return n if n >= self.min_frames else None

    def frames_needed(self) -> int:
        return self.frames if self.frames is not None else self.min_frames

    def frame_rule(self) -> str:
        if self.frames is not None:
            return f"{self.frames} frames"
        return f"the largest 4n+1 count from {self.min_frames} to {self.max_frames} frames"

    def target_size(self, src_width: int, src_height: int) -> tuple[int, int]:
        """Output width and height for a source of this (display) size."""
        if self.media == "image":
            return bucket_size(src_width, src_height, self.width * self.height)
        w, h = self.width, self.height
        if self.orientation == "match" and (src_width > src_height) != (w > h) and src_width != src_height:
            w, h = h, w
        return w, h

    def fingerprint(self) -> str:
        """Changes whenever anything that shapes the output changes (not the description)."""
        data = {k: v for k, v in asdict(self).items()
                if k not in ("name", "description", "format", "trainable")}
        if self.media == "image":
            data["buckets"] = "musubi"  # images were once rounded per side: those are stale
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def summary(self) -> str:
        if self.media == "audio":
            return (f"audio, {self.sample_rate or 'source'} Hz, {self.channels or 'source'} ch, "
                    f"{self.min_seconds:g}-{self.max_seconds:g} s, MP3 {self.audio_bitrate}")
        if self.media == "image":
            return f"images, ~{self.width}x{self.height} px area in /16 buckets"
        fps = f"{self.fps:g} fps" if self.fps else "source fps"
        return f"{self.width}x{self.height}, {fps}, {self.frame_rule()}, {self.crop}"


def largest_4n1(n: int) -> int:
    """The largest count of the form 4k+1 not above n (musubi-tuner rounds target_frames down)."""
    return (n - 1) // 4 * 4 + 1 if n >= 1 else 0


def bucket_list(resolution: tuple[int, int], step: int = 16) -> list[tuple[int, int]]:
    """musubi-tuner's buckets around `resolution` (dataset/image_video_dataset.BucketSelector):
    widths from half the square side up to it in steps, each with the height that keeps the
    area, both ways round, sorted."""
    area = resolution[0] * resolution[1]
    side = int(math.sqrt(area))
    low = (side // 2) - (side // 2) % step
    found = set()
    for w in range(low, side + step, step):
        h = (area // w) - (area // w) % step
        found.update({(w, h), (h, w)})
    return sorted(found)


def bucket_for(width: int, height: int, resolution: tuple[int, int]) -> tuple[int, int]:
    """The bucket musubi puts a `width`x`height` picture in: the one whose aspect ratio is
    nearest (the first of equals, as numpy's argmin)."""
    buckets = bucket_list(resolution)
    aspect = width / height
    return min(buckets, key=lambda b: abs(b[0] / b[1] - aspect))


def bucket_size(width: int, height: int, area: int, step: int = 16) -> tuple[int, int]:
    """The musubi bucket of a picture, for a square resolution of about `area` pixels: lorad
    makes images that size, so musubi neither resizes nor crops them a second time."""
    side = int(math.sqrt(area))
    return bucket_for(width, height, (side, side))


BUILTIN: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile("wan21-t2v-480p-portrait", width=480, height=848, fps=16.0, frames=41,
                description="Wan 2.1 T2V 480p, 9:16 portrait, 41 frames at 16 fps (2.56 s)"),
        Profile("wan21-t2v-480p-landscape", width=848, height=480, fps=16.0, frames=41,
                description="Wan 2.1 T2V 480p, 16:9 landscape, 41 frames at 16 fps"),
        Profile("wan22-14b-720p", width=1280, height=720, fps=16.0, frames=None, min_frames=17,
                max_frames=81, orientation="match",
                description="Wan 2.2 A14B 720p (portrait sources become 720x1280), 16 fps, "
                            "up to 81 frames"),
        Profile("wan22-5b-720p", width=1280, height=704, fps=24.0, frames=None, min_frames=25,
                max_frames=121, orientation="match", format="diffusion-pipe",
                description="Wan 2.2 TI2V-5B 1280x704 (or 704x1280), 24 fps, up to 121 "
                            "frames: trained by diffusion-pipe (musubi-tuner trains Wan 2.2 "
                            "14B only)"),
        Profile("ltx-video-768", width=768, height=512, fps=25.0, frames=None, min_frames=25,
                max_frames=121, orientation="match", format="diffusion-pipe",
                description="LTX-Video 768x512 (or 512x768), 25 fps, up to 121 frames "
                            "(diffusion-pipe keeps 8k+1 of them), trained by diffusion-pipe"),
        Profile("qwen-image-1328", media="image", width=1328, height=1328, fps=None, frames=1,
                min_frames=1, max_frames=1, format="diffusion-pipe",
                description="Qwen-Image stills, 1328x1328 (its native size), trained by "
                            "diffusion-pipe"),
        Profile("ace-step-audio", media="audio", width=16, height=16, fps=None, frames=None,
                min_frames=1, max_frames=1, sample_rate=48000, channels=2, min_seconds=30.0,
                max_seconds=240.0, audio_bitrate="320k", format="ace-step",
                description="ACE-Step music tracks: 48 kHz stereo, 30-240 s (longer ones "
                            "trimmed), peak-normalised to -1 dBFS, MP3 320 kbps"),
        Profile("image-1024", media="image", width=1024, height=1024, fps=None, frames=1,
                min_frames=1, max_frames=1,
                description="still images bucketed to about 1024x1024 pixels, sides in /16"),
    ]
}


def _check(profile: Profile, where: str) -> Profile:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{where}: profiles.{profile.name}.{key} {why}")

    if profile.media not in MEDIA:
        raise bad("media", f"must be one of {', '.join(MEDIA)}")
    if profile.crop not in CROPS:
        raise bad("crop", f"must be one of {', '.join(CROPS)}")
    if profile.orientation not in ORIENTATIONS:
        raise bad("orientation", f"must be one of {', '.join(ORIENTATIONS)}")
    for key in ("width", "height"):
        value = getattr(profile, key)
        if value < 16 or value % 16:
            raise bad(key, f"must be a multiple of 16 (Wan buckets are /16), got {value}")
    if profile.media == "video":
        if profile.frames is not None and profile.frames % 4 != 1:
            raise bad("frames", f"must be 4n+1 (e.g. {largest_4n1(profile.frames)}), "
                                f"got {profile.frames}")
        if profile.min_frames > profile.max_frames:
            raise bad("min_frames", "must not be above max_frames")
        if not profile.fps or profile.fps <= 0:
            raise bad("fps", "must be a positive number for video profiles")
    if profile.media == "audio":
        if profile.sample_rate is not None and not 8000 <= profile.sample_rate <= 192000:
            raise bad("sample_rate", f"must be 8000-192000 Hz, got {profile.sample_rate}")
        if profile.channels is not None and profile.channels not in (1, 2):
            raise bad("channels", "must be 1 or 2")
        low, high = profile.min_seconds or 0, profile.max_seconds
        if high is not None and (high <= 0 or low > high):
            raise bad("max_seconds", "must be above min_seconds")
    return profile


def all_profiles(config: Config | None = None) -> dict[str, Profile]:
    profiles = dict(BUILTIN)
    if config is None:
        return profiles
    known = {f.name for f in fields(Profile)}
    for name, keys in config.profiles.items():
        where = f"{config.path}:{config.lines.get(f'profiles.{name}', 1)}"
        base_name = keys.get("base")
        if base_name is not None and base_name not in profiles:
            raise ConfigError(f"{where}: profiles.{name}.base: no profile named {base_name!r} "
                              f"(known: {', '.join(sorted(profiles))})")
        base = profiles.get(base_name) if base_name else profiles.get(name, Profile(name))
        values: dict[str, Any] = {k: v for k, v in keys.items() if k in known and k != "base"}
        if "fps" in values:
            values["fps"] = float(values["fps"])
        if "frames" in values and values["frames"] == 0:
            values["frames"] = None  # 0 in TOML means "largest 4n+1 within min/max"
        profiles[name] = _check(replace(base, name=name, **values), where)
    return profiles


def get(name: str, config: Config | None = None) -> Profile:
    profiles = all_profiles(config)
    if name not in profiles:
        raise ProfileError(f"no profile named {name!r}; known: {', '.join(sorted(profiles))} "
                       "(`lorad profiles` describes them; add your own under [profiles.NAME] in "
                       "lorad.toml)")
    return profiles[name]
