"""The musubi-tuner double: the three Wan scripts lorad runs, imitated with the standard library.

Everything printed follows shared/reference/musubi-tuner.md (kohya-ss/musubi-tuner 0.3.4): argument
names, the startup block, the tqdm bar (written with `\\r` to stderr, each step twice: once from
`update` with the previous loss and once from `set_postfix` with the new one), epoch lines,
`saving checkpoint:` lines, state directories, `model saved.`, the error texts, file names and
the safetensors `ss_*` metadata. Errors are raised as real exceptions (some with the module name
of the library that raises them upstream) so Python prints them as upstream does.

Behaviour switches (environment variables win over `$MUSUBI_DOUBLE_STATE/config.json`):
  MUSUBI_DOUBLE_MODE          normal | slow | oom | nan | crash | killed
  MUSUBI_DOUBLE_STEP_SECONDS  time per optimizer step (0.02; slow: 0.5)
  MUSUBI_DOUBLE_FAIL_AT       optimizer step where oom/crash/killed/nan start (middle of the run)
Every run is appended to `$MUSUBI_DOUBLE_STATE/invocations.jsonl` and registers its pid in
`$MUSUBI_DOUBLE_STATE/pids/` while it runs.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import math
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import tomllib
import zlib
from pathlib import Path

MODES = ("normal", "slow", "oom", "nan", "crash", "killed")
TASKS = ("t2v-14B", "t2v-1.3B", "i2v-14B", "t2i-14B", "flf2v-14B", "t2v-1.3B-FC", "t2v-14B-FC",
         "i2v-14B-FC", "i2v-A14B", "t2v-A14B")
TASK_BOUNDARY = {"t2v-A14B": 0.875, "i2v-A14B": 0.900}
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".avif")
VIDEO_EXTS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".flv", ".wmv", ".m4v", ".mpg", ".mpeg")
TB = "musubi_tuner.training.trainer_base"
DS = "musubi_tuner.dataset.image_video_dataset"
CU = "musubi_tuner.dataset.config_utils"
TU = "musubi_tuner.utils.train_utils"

# upstream file-name patterns (utils/train_utils.py)
EPOCH_FILE_NAME = "{}-{:06d}"
STEP_FILE_NAME = "{}-step{:08d}"
EPOCH_STATE_NAME = "{}-{:06d}-state"
STEP_STATE_NAME = "{}-step{:08d}-state"
LAST_STATE_NAME = "{}-state"


# --------------------------------------------------------------------------- exceptions
def _exc(module: str, name: str, base: type = Exception) -> type:
    cls = type(name, (base,), {})
    cls.__module__ = module  # the traceback prints "module.name: message"
    return cls


MultipleInvalid = _exc("voluptuous.error", "MultipleInvalid")
TomlDecodeError = _exc("toml.decoder", "TomlDecodeError", ValueError)
OutOfMemoryError = _exc("torch", "OutOfMemoryError", RuntimeError)


# ------------------------------------------------------------------------------ output
def out(*parts: object) -> None:
    """stdout, as `print`/`accelerator.print`, flushed (PYTHONUNBUFFERED or not)."""
    print(*parts, flush=True)


def log(level: str, logger: str, msg: str) -> None:
    """stderr in logging.basicConfig's default format: LEVEL:logger.name:message."""
    sys.stderr.write(f"{level}:{logger}:{msg}\n")
    sys.stderr.flush()


def info(logger: str, msg: str) -> None:
    log("INFO", logger, msg)


def warning(logger: str, msg: str) -> None:
    log("WARNING", logger, msg)


# ---------------------------------------------------------------------------- settings
def state_dir() -> Path | None:
    value = os.environ.get("MUSUBI_DOUBLE_STATE")
    return Path(value) if value else None


def settings() -> dict:
    config: dict = {}
    sd = state_dir()
    if sd and (sd / "config.json").is_file():
        try:
            config = json.loads((sd / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
    mode = os.environ.get("MUSUBI_DOUBLE_MODE") or config.get("mode") or "normal"
    if mode not in MODES:
        sys.stderr.write(f"musubi double: unknown MUSUBI_DOUBLE_MODE {mode!r} (one of {', '.join(MODES)})\n")
        sys.exit(3)
    seconds = os.environ.get("MUSUBI_DOUBLE_STEP_SECONDS") or config.get("step_seconds")
    fail_at = os.environ.get("MUSUBI_DOUBLE_FAIL_AT") or config.get("fail_at")
    default_seconds = 0.5 if mode == "slow" else 0.02
    return {**config, "mode": mode,
            "step_seconds": float(seconds) if seconds not in (None, "") else default_seconds,
            "fail_at": int(fail_at) if fail_at not in (None, "") else None}


_PID_FILES: list[Path] = []


def unregister() -> None:
    for f in _PID_FILES:
        f.unlink(missing_ok=True)


def register(script: str) -> None:
    """Log this run and keep a pid file while it runs (the sshd fixture kills leftovers)."""
    sd = state_dir()
    if not sd:
        return
    try:
        sd.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if k.startswith("MUSUBI_DOUBLE_") or k in ("PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES")}
        record = {"script": script, "argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid(),
                  "time": time.time(), "env": env}
        with open(sd / "invocations.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        pids = sd / "pids"
        pids.mkdir(exist_ok=True)
        pid_file = pids / str(os.getpid())
        pid_file.write_text(script)
        _PID_FILES.append(pid_file)
        atexit.register(unregister)
    except OSError:
        pass


# ------------------------------------------------------------------------- safetensors
def _pack(values: list[float], dtype: str) -> bytes:
    if dtype == "F32":
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == "F16":
        return struct.pack(f"<{len(values)}e", *values)
    if dtype == "BF16":  # the upper half of each float32
        return b"".join(struct.pack("<f", v)[2:] for v in values)
    raise ValueError(dtype)


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]],
                      metadata: dict[str, str] | None) -> bytes:
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset, blobs = 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def write_safetensors(path: Path, tensors, metadata=None) -> None:
    """Written in place like safetensors' save_file (not atomic: the checkpoint line is printed
    before the file is complete, as upstream)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(tensors, metadata))


def read_header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def tiny_tensor(values: list[float], dtype: str = "BF16", shape: list[int] | None = None):
    return (dtype, shape if shape is not None else [len(values)], _pack(values, dtype))


# ------------------------------------------------------------------------------- tqdm
def format_interval(t: float) -> str:
    mins, s = divmod(int(t), 60)
    h, m = divmod(mins, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_num(n: float) -> str:
    """tqdm.format_num: the shorter of `.3g` and str()."""
    f = f"{n:.3g}".replace("e+0", "e+").replace("e-0", "e-")
    s = str(n)
    return f if len(f) < len(s) else s


BAR_CHARS = " " + "".join(map(chr, range(0x258F, 0x2587, -1)))  # " ▏▎▍▌▋▊▉█"


def format_meter(n: int, total: int | None, elapsed: float, postfix: str = "", desc: str = "") -> str:
    """tqdm 4.67 format_meter for a pipe (no ncols: a 10-character bar, unicode blocks)."""
    rate = n / elapsed if elapsed else None
    inv_rate = 1 / rate if rate else None
    rate_noinv = (f"{rate:5.2f}" if rate else "?") + "it/s"
    rate_inv = (f"{inv_rate:5.2f}" if inv_rate else "?") + "s/it"
    rate_fmt = rate_inv if inv_rate and inv_rate > 1 else rate_noinv
    post = ", " + postfix if postfix else ""
    prefix = f"{desc}: " if desc else ""
    if not total:
        return f"{prefix}{n}it [{format_interval(elapsed)}, {rate_fmt}{post}]"
    remaining = (total - n) / rate if rate else 0
    remaining_str = format_interval(remaining) if rate else "?"
    frac = n / total
    nsyms = len(BAR_CHARS) - 1
    full, part = divmod(int(frac * 10 * nsyms), nsyms)
    bar = BAR_CHARS[-1] * full
    if full < 10:
        bar += BAR_CHARS[part] + BAR_CHARS[0] * (10 - full - 1)
    return (f"{prefix}{frac * 100:3.0f}%|{bar}| {n}/{total} "
            f"[{format_interval(elapsed)}<{remaining_str}, {rate_fmt}{post}]")


class Bar:
    """tqdm(range(total), smoothing=0, desc=...) writing to a pipe: every display is `\\r` + the
    meter, padded with spaces over a longer previous one; close() adds the only `\\n`."""

    def __init__(self, total: int | None, desc: str = "") -> None:
        self.total, self.desc, self.n, self.postfix, self._last = total, desc, 0, "", 0
        self.start = time.monotonic()
        self.display()

    def display(self) -> None:
        s = format_meter(self.n, self.total, time.monotonic() - self.start, self.postfix, self.desc)
        sys.stderr.write("\r" + s + " " * max(self._last - len(s), 0))
        sys.stderr.flush()
        self._last = len(s)

    def reset(self) -> None:
        self.n, self.start = 0, time.monotonic()
        self.display()

    def update(self, k: int = 1) -> None:
        self.n += k
        self.display()

    def set_postfix(self, **kw: float) -> None:
        self.postfix = ", ".join(f"{k}={format_num(v) if isinstance(v, float) else v}" for k, v in kw.items())
        self.display()

    def close(self) -> None:
        self.display()
        sys.stderr.write("\n")
        sys.stderr.flush()


# --------------------------------------------------------------------- dataset config
def _where(path: list) -> str:
    return "data" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)


ASCENDABLE = {"caption_extension": str, "batch_size": int, "num_repeats": int, "resolution": "reso",
              "enable_bucket": bool, "bucket_no_upscale": bool}
IMAGE_KEYS = {**ASCENDABLE, "image_directory": str, "image_jsonl_file": str, "cache_directory": str,
              "control_directory": str, "multiple_target": bool, "fp_latent_window_size": int,
              "fp_1f_clean_indices": [int], "fp_1f_target_index": int, "fp_1f_no_post": bool,
              "no_resize_control": bool, "control_resolution": "reso"}
VIDEO_KEYS = {**ASCENDABLE, "video_directory": str, "video_jsonl_file": str, "control_directory": str,
              "target_frames": [int], "frame_extraction": str, "frame_stride": int, "frame_sample": int,
              "max_frames": int, "cache_directory": str, "source_fps": float, "fp_latent_window_size": int}
RENAMED = {"flux_kontext_no_resize_control": "no_resize_control",
           "qwen_image_edit_no_resize_control": "no_resize_control",
           "qwen_image_edit_control_resolution": "control_resolution"}


def _check_value(value, expected, path: list) -> str | None:
    """voluptuous' message for a type mismatch (bool passes as int, as isinstance says)."""
    if expected == "reso":
        if isinstance(value, int) or (isinstance(value, list) and len(value) == 2
                                      and all(isinstance(v, int) for v in value)):
            return None
        return f"expected int for dictionary value @ {_where(path)}"
    if isinstance(expected, list):
        if not isinstance(value, list):
            return f"expected list for dictionary value @ {_where(path)}"
        for i, v in enumerate(value):
            if not isinstance(v, expected[0]):
                return f"expected {expected[0].__name__} @ {_where([*path, i])}"
        return None
    if not isinstance(value, expected):
        return f"expected {expected.__name__} for dictionary value @ {_where(path)}"
    return None


def _invalid(message: str):
    log("ERROR", CU, "Invalid user config / ユーザ設定の形式が正しくないようです")
    raise MultipleInvalid(message)


def validate_user_config(config: dict) -> None:
    for key, value in config.items():
        if key == "general":
            if not isinstance(value, dict):
                _invalid(f"expected a dictionary for dictionary value @ data['{key}']")
            for k, v in value.items():
                if k not in ASCENDABLE:
                    _invalid(f"extra keys not allowed @ data['general'][{k!r}]")
                err = _check_value(v, ASCENDABLE[k], ["general", k])
                if err:
                    _invalid(err)
        elif key == "datasets":
            if not isinstance(value, list):
                _invalid("expected list for dictionary value @ data['datasets']")
            for i, ds in enumerate(value):
                for old, new in RENAMED.items():
                    if old in ds:
                        warning(CU, f"{old} is deprecated, use {new} instead")
                        ds[new] = ds.pop(old)
                video = "video_directory" in ds or "video_jsonl_file" in ds
                allowed = VIDEO_KEYS if video else IMAGE_KEYS
                for k, v in ds.items():
                    if k not in allowed:
                        _invalid(f"extra keys not allowed @ data['datasets'][{i}][{k!r}]")
                    err = _check_value(v, allowed[k], ["datasets", i, k])
                    if err:
                        _invalid(err)
        else:
            _invalid(f"extra keys not allowed @ data[{key!r}]")


def load_user_config(file: str) -> dict:
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"file not found / ファイルが見つかりません: {path}")
    name = path.name.lower()
    if name.endswith(".json"):
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except Exception:
            log("ERROR", CU, "Error on parsing JSON config file. Please check the format. / "
                "JSON 形式の設定ファイルの読み込みに失敗しました。"
                "文法が正しいか確認してください。: " + str(path))
            raise
    elif name.endswith(".toml"):
        try:
            config = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            log("ERROR", CU, "Error on parsing TOML config file. Please check the format. / "
                "TOML 形式の設定ファイルの読み込みに失敗しました。"
                "文法が正しいか確認してください。: " + str(path))
            raise TomlDecodeError(str(e)) from None
    else:
        raise ValueError(f"not supported config file format / 対応していない設定ファイルの形式です: {path}")
    return config


def round_frames(frames: list[int]) -> list[int]:
    return sorted({(f - 1) // 4 * 4 + 1 for f in frames})


class Dataset:
    """One [[datasets]] entry with [general] and the defaults applied."""

    def __init__(self, index: int, general: dict, raw: dict, args_batch_size: int | None = None):
        merged = {**general, **raw}
        self.index = index
        self.raw = raw
        self.is_video = "video_directory" in raw or "video_jsonl_file" in raw
        reso = merged.get("resolution", [960, 544])
        self.resolution = (reso, reso) if isinstance(reso, int) else tuple(reso)
        self.enable_bucket = bool(merged.get("enable_bucket", False))
        self.bucket_no_upscale = bool(merged.get("bucket_no_upscale", False)) and self.enable_bucket
        self.caption_extension = merged.get("caption_extension")
        self.batch_size = args_batch_size or int(merged.get("batch_size", 1))
        self.num_repeats = int(merged.get("num_repeats", 1))
        self.image_directory = merged.get("image_directory")
        self.image_jsonl_file = merged.get("image_jsonl_file")
        self.video_directory = merged.get("video_directory")
        self.video_jsonl_file = merged.get("video_jsonl_file")
        self.frame_extraction = merged.get("frame_extraction", "head")
        self.frame_stride = int(merged.get("frame_stride", 1))
        self.frame_sample = int(merged.get("frame_sample", 1))
        self.max_frames = int(merged.get("max_frames", 129))
        self.source_fps = merged.get("source_fps")
        self.target_frames = list(merged.get("target_frames", [1]))
        directory = self.video_directory or self.image_directory
        self.cache_directory = merged.get("cache_directory") or directory
        if not self.is_video and not (self.image_directory or self.image_jsonl_file):
            raise ValueError("image_directory or image_jsonl_file must be specified")
        if self.is_video:
            if self.frame_extraction not in ("head", "chunk", "slide", "uniform", "full"):
                raise ValueError(f"frame_extraction {self.frame_extraction} is not supported")
            rounded = round_frames(self.target_frames)
            if rounded != sorted(set(self.target_frames)):
                warning(DS, f"target_frames are rounded to {rounded}")
            self.target_frames = rounded
            if self.frame_extraction == "uniform" and self.frame_sample == 1:
                warning(DS, "frame_sample is set to 1 for frame_extraction=uniform. frame_extraction is "
                        "changed to head.")
                self.frame_extraction = "head"

    def summary(self) -> str:
        lines = [f"[Dataset {self.index}]", f"  is_image_dataset: {not self.is_video}",
                 f"  resolution: {self.resolution}", f"  batch_size: {self.batch_size}",
                 f"  num_repeats: {self.num_repeats}", f'  caption_extension: "{self.caption_extension}"',
                 f"  enable_bucket: {self.enable_bucket}", f"  bucket_no_upscale: {self.bucket_no_upscale}",
                 f'  cache_directory: "{self.cache_directory}"', "  debug_dataset: False"]
        if self.is_video:
            lines += [f'    video_directory: "{self.video_directory}"',
                      f'    video_jsonl_file: "{self.video_jsonl_file}"',
                      f'    target_frames: {tuple(self.target_frames)}',
                      f'    frame_extraction: {self.frame_extraction}',
                      f"    frame_stride: {self.frame_stride}",
                      f"    frame_sample: {self.frame_sample}", f"    max_frames: {self.max_frames}",
                      f"    source_fps: {self.source_fps}"]
        else:
            lines += [f'    image_directory: "{self.image_directory}"',
                      f'    image_jsonl_file: "{self.image_jsonl_file}"']
        return "\n".join(lines)

    # ---- media items (for the cache scripts)
    def items(self) -> list[dict]:
        """[{"key", "path", "caption"}] as musubi enumerates them (top-level files only)."""
        found: list[dict] = []
        if self.is_video and self.video_directory:
            info(DS, f"glob videos in {self.video_directory}")
            d = Path(self.video_directory)
            paths = sorted(p for p in d.iterdir() if p.suffix.lower() in VIDEO_EXTS) if d.is_dir() else []
            info(DS, f"found {len(paths)} videos")
            for p in paths:
                found.append({"key": p.stem, "path": str(p), "caption": self._caption(p)})
        elif self.is_video:
            info(DS, f"load video jsonl from {self.video_jsonl_file}")
            for line in Path(self.video_jsonl_file).read_text(encoding="utf-8").splitlines(keepends=True):
                rec = json.loads(line)
                found.append({"key": Path(rec["video_path"]).stem, "path": rec["video_path"],
                              "caption": rec.get("caption", "")})
            info(DS, f"loaded {len(found)} videos")
        elif self.image_directory:
            info(DS, f"glob images in {self.image_directory}")
            d = Path(self.image_directory)
            paths = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS) if d.is_dir() else []
            if self.caption_extension:  # images without a caption file are skipped silently
                paths = [p for p in paths if p.with_suffix(self.caption_extension).exists()]
            info(DS, f"found {len(paths)} images")
            for p in paths:
                found.append({"key": p.stem, "path": str(p), "caption": self._caption(p)})
        else:
            info(DS, f"load image jsonl from {self.image_jsonl_file}")
            for line in Path(self.image_jsonl_file).read_text(encoding="utf-8").splitlines(keepends=True):
                rec = json.loads(line)
                found.append({"key": Path(rec["image_path"]).stem, "path": rec["image_path"],
                              "caption": rec.get("caption", "")})
            info(DS, f"loaded {len(found)} images")
        return found

    def _caption(self, media: Path) -> str:
        caption_path = str(media.with_suffix(self.caption_extension)) if self.caption_extension else ""
        with open(caption_path, encoding="utf-8") as f:  # no extension: open("") fails, as upstream
            return f.read().strip()

    def clips(self, frame_count: int) -> list[tuple[int, int]]:
        """(start, frames) per frame_extraction (image datasets: one (0, 1))."""
        if not self.is_video:
            return [(0, 1)]
        n = frame_count
        if self.source_fps:  # image_video_dataset.load_video drops frames to Wan's 16 fps:
            # an index advancing by 16/source_fps per decoded frame, kept when it changes
            delta, position, previous, n = 16.0 / float(self.source_fps), 0.0, -1, 0
            for _ in range(frame_count):
                index = int(position)
                position += delta
                if index != previous:
                    previous, n = index, n + 1
        clips: list[tuple[int, int]] = []
        fe = self.frame_extraction
        if fe == "full":
            t = (min(n, self.max_frames) - 1) // 4 * 4 + 1
            return [(0, t)] if t >= 1 else []
        for t in self.target_frames:
            if n < t:
                continue
            if fe == "head":
                clips.append((0, t))
            elif fe == "chunk":
                clips += [(s, t) for s in range(0, n - t + 1, t)]
            elif fe == "slide":
                clips += [(s, t) for s in range(0, n - t + 1, self.frame_stride)]
            elif fe == "uniform":
                k = self.frame_sample
                clips += [(int(i * (n - t) / (k - 1)), t) for i in range(k)]
        return clips

    def bucket(self, width: int, height: int) -> tuple[int, int]:
        """dataset/image_video_dataset.py BucketSelector: a list of buckets of about the
        resolution's area, then the one of nearest aspect ratio (numpy argmin: the first)."""
        rw, rh = self.resolution
        if not self.enable_bucket:
            return rw, rh
        area = rw * rh
        if self.bucket_no_upscale and width * height <= area:
            return width // 16 * 16, height // 16 * 16
        side = int(math.sqrt(area))
        low = (side // 2) - (side // 2) % 16
        resos = set()
        for w in range(low, side + 16, 16):
            h = (area // w) - (area // w) % 16
            resos.update({(w, h), (h, w)})
        resos = sorted(resos)
        errors = [abs(w / h - width / height) for w, h in resos]
        return resos[errors.index(min(errors))]


def load_datasets(file: str, args_batch_size: int | None = None) -> list[Dataset]:
    info(CU, f"Load dataset config from {file}")
    config = load_user_config(file)
    validate_user_config(config)
    general = config.get("general", {})
    datasets = [Dataset(i, general, raw, args_batch_size) for i, raw in enumerate(config.get("datasets", []))]
    caches = [d.cache_directory for d in datasets]
    if len(set(caches)) != len(caches):
        raise ValueError("cache directory should be unique for each dataset (note that cache directory is "
                         "image/video directory if not specified)")
    for d in datasets:
        info(CU, d.summary())
    return datasets


# ------------------------------------------------------------------------------ media
def probe(path: str, fallback: tuple[int, int]) -> tuple[int, int, int]:
    """(width, height, frame_count) of a media file or a directory of frames."""
    p = Path(path)
    if p.is_dir():
        frames = sorted(x for x in p.iterdir() if x.suffix.lower() in IMAGE_EXTS)
        w, h, _ = probe(str(frames[0]), fallback) if frames else (*fallback, 0)
        return w, h, len(frames)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    with open(p, "rb") as f:
        head = f.read(32)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        w, h = struct.unpack(">II", head[16:24])
        return w, h, 1
    if shutil.which("ffprobe"):
        r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height,nb_frames,avg_frame_rate:format=duration", "-of", "json",
                            str(p)], capture_output=True, text=True)
        try:
            data = json.loads(r.stdout)
            s = data["streams"][0]
            frames = s.get("nb_frames")
            if not frames or frames == "N/A":
                num, _, den = s.get("avg_frame_rate", "0/1").partition("/")
                fps = float(num) / float(den or 1) if float(den or 1) else 0
                frames = round(float(data.get("format", {}).get("duration", 0)) * fps)
            if p.suffix.lower() in IMAGE_EXTS:
                frames = 1
            return int(s["width"]), int(s["height"]), max(int(frames), 1)
        except (ValueError, KeyError, IndexError):
            pass
    return fallback[0], fallback[1], 1 if p.suffix.lower() in IMAGE_EXTS else 81


def sha(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


# ------------------------------------------------------------------------------ cache
def cache_parser(text_encoder: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset_config", type=str, required=True, help="path to dataset config .toml file")
    p.add_argument("--device", type=str, default=None)
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--num_workers", type=int, default=None)
    p.add_argument("--skip_existing", action="store_true")
    p.add_argument("--keep_cache", action="store_true")
    if text_encoder:
        p.add_argument("--t5", type=str, required=True, help="text encoder (T5) checkpoint path")
        p.add_argument("--fp8_t5", action="store_true")
    else:
        p.add_argument("--vae", type=str, default=None)
        p.add_argument("--vae_dtype", type=str, default=None)
        p.add_argument("--debug_mode", type=str, default=None, choices=["image", "console", "video"])
        p.add_argument("--console_width", type=int, default=shutil.get_terminal_size().columns)
        p.add_argument("--console_back", type=str, default=None)
        p.add_argument("--console_num_images", type=int, default=None)
        p.add_argument("--disable_cudnn_backend", action="store_true")
        p.add_argument("--vae_cache_cpu", action="store_true")
        p.add_argument("--i2v", action="store_true")
        p.add_argument("--clip", type=str, default=None)
        p.add_argument("--one_frame", action="store_true")
    return p


def detect_wan_sd_dtype(path: str) -> str:
    """fp16, bf16 or fp8, from the header of the DiT file as musubi reads it."""
    header = read_header(Path(path))
    for key in ("model.diffusion_model.blocks.0.cross_attn.k.weight", "blocks.0.cross_attn.k.weight"):
        if key in header:
            dtype = header[key]["dtype"]
            info("musubi_tuner.wan.modules.model", f"Detected DiT dtype: {dtype}")
            return {"F16": "fp16", "BF16": "bf16"}.get(dtype, "fp8" if dtype.startswith("F8") else "fp32")
    raise ValueError(f"Could not find the dtype in the model weights: {path}")


def _load_model(path: str) -> None:
    with open(path, "rb"):  # a missing file fails like torch.load / safe_open
        pass


def _remove_old(cache_dir: str, suffix: str, keep: set[str]) -> None:
    d = Path(cache_dir)
    for f in sorted(d.glob(f"*{suffix}")) if d.is_dir() else []:
        if suffix == "_wan.safetensors" and f.name.endswith("_wan_te.safetensors"):
            continue
        if f.name not in keep:
            f.unlink()
            info("musubi_tuner.cache_latents" if suffix == "_wan.safetensors"
                 else "musubi_tuner.cache_text_encoder_outputs", f"Removed old cache file: {f}")


def cache_main(kind: str, module: str) -> None:
    register(f"wan_cache_{kind}")
    settings()
    te = kind == "text_encoder_outputs"
    args = cache_parser(te).parse_args()
    logger = "musubi_tuner.cache_text_encoder_outputs" if te else "musubi_tuner.cache_latents"
    datasets = load_datasets(args.dataset_config, args.batch_size)
    if te:
        info(module, f"loading T5: {args.t5}")
        _load_model(args.t5)
    else:
        assert args.vae is not None, "vae checkpoint is required"
        info(module, f"Loading VAE model from {args.vae}")
        _load_model(args.vae)
        if args.clip:
            info(module, f"Loading CLIP model from {args.clip}")
            _load_model(args.clip)
    i2v = not te and bool(args.i2v or args.clip)
    for ds in datasets:
        info(logger, f"Encoding dataset [{ds.index}]")
        items = ds.items()
        Path(ds.cache_directory).mkdir(parents=True, exist_ok=True)
        keep: set[str] = set()
        bar = Bar(None)
        for item in items:
            w, h, frames = probe(item["path"], ds.resolution)
            if te:
                names = [f"{item['key']}_wan_te.safetensors"]
            else:
                names = [f"{item['key']}_{s:05d}-{t:03d}_{w:04d}x{h:04d}_wan.safetensors" if ds.is_video
                         else f"{item['key']}_{w:04d}x{h:04d}_wan.safetensors" for s, t in ds.clips(frames)]
            for name in names:
                keep.add(name)
                path = Path(ds.cache_directory) / name
                if args.skip_existing and path.exists():
                    continue
                if te:
                    n = 8 + sha(item["caption"]) % 24
                    tensors = {"varlen_t5_bf16": tiny_tensor([0.0] * 4, "BF16", [1, 4])}
                    metadata = {"architecture": "wan", "caption1": item["caption"], "format_version": "1.0.1",
                                "tokens": str(n)}
                else:
                    t = 1 if not ds.is_video else int(name.split("_")[-3].split("-")[1])
                    bw, bh = ds.bucket(w, h)
                    lf, lh, lw = (t - 1) // 4 + 1, bh // 8, bw // 8
                    tensors = {f"latents_{lf}x{lh}x{lw}_bf16": tiny_tensor([0.0] * 4, "BF16", [1, 4])}
                    if i2v:
                        tensors[f"latents_image_{lf}x{lh}x{lw}_bf16"] = tiny_tensor([0.0] * 4, "BF16", [1, 4])
                    if not te and args.clip:
                        tensors["clip_bf16"] = tiny_tensor([0.0] * 4, "BF16", [1, 4])
                    metadata = {"architecture": "wan", "width": str(w), "height": str(h),
                                "format_version": "1.0.1", "frame_count": str(t),
                                "bucket": json.dumps([bw, bh, t])}
                write_safetensors(path, tensors, metadata)
                bar.update()
        bar.close()
        if not args.keep_cache:
            _remove_old(ds.cache_directory, "_wan_te.safetensors" if te else "_wan.safetensors", keep)
    sys.exit(0)


# ---------------------------------------------------------------------------- training
def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    a = p.add_argument
    a("--config_file", type=str, default=None)
    a("--task", type=str, default="t2v-14B", choices=list(TASKS))
    a("--dit", type=str, default=None)
    a("--dit_high_noise", type=str, default=None)
    a("--dit_dtype", type=str, default=None)
    a("--vae", type=str, default=None)
    a("--vae_dtype", type=str, default=None)
    a("--vae_cache_cpu", action="store_true")
    a("--t5", type=str, default=None)
    a("--fp8_t5", action="store_true")
    a("--clip", type=str, default=None)
    a("--one_frame", action="store_true")
    a("--timestep_boundary", type=int, default=None)
    a("--offload_inactive_dit", action="store_true")
    a("--force_v2_1_time_embedding", action="store_true")
    a("--dataset_config", type=str, default=None)
    for flag in ("--sdpa", "--flash_attn", "--xformers", "--flash3", "--sage_attn", "--split_attn"):
        a(flag, action="store_true")
    a("--network_module", type=str, default=None)
    a("--network_dim", type=int, default=None)
    a("--network_alpha", type=float, default=1)
    a("--network_dropout", type=float, default=None)
    a("--network_args", type=str, default=None, nargs="*")
    a("--network_weights", type=str, default=None)
    a("--dim_from_weights", action="store_true")
    a("--scale_weight_norms", type=float, default=None)
    a("--base_weights", type=str, default=None, nargs="*")
    a("--base_weights_multiplier", type=float, default=None, nargs="*")
    a("--optimizer_type", type=str, default="")
    a("--optimizer_args", type=str, default=None, nargs="*")
    a("--learning_rate", type=float, default=2.0e-6)
    a("--lr_scheduler", type=str, default="constant")
    a("--lr_warmup_steps", type=str, default="0")
    a("--lr_decay_steps", type=str, default="0")
    a("--lr_scheduler_num_cycles", type=int, default=1)
    a("--lr_scheduler_power", type=float, default=1)
    a("--lr_scheduler_min_lr_ratio", type=float, default=None)
    a("--lr_scheduler_timescale", type=int, default=None)
    a("--lr_scheduler_type", type=str, default="")
    a("--lr_scheduler_args", type=str, default=None, nargs="*")
    a("--max_train_steps", type=int, default=1600)
    a("--max_train_epochs", type=int, default=None)
    a("--gradient_accumulation_steps", type=int, default=1)
    a("--max_grad_norm", type=float, default=1.0)
    a("--mixed_precision", type=str, default="no", choices=["no", "fp16", "bf16"])
    a("--full_fp16", action="store_true")
    a("--full_bf16", action="store_true")
    a("--fp8_base", action="store_true")
    a("--fp8_scaled", action="store_true")
    a("--gradient_checkpointing", action="store_true")
    a("--gradient_checkpointing_cpu_offload", action="store_true")
    a("--blocks_to_swap", type=int, default=None)
    a("--use_pinned_memory_for_block_swap", action="store_true")
    a("--block_swap_h2d_only", action="store_true")
    a("--block_swap_ring_size", type=int, default=2)
    a("--timestep_sampling", type=str, default="sigma",
      choices=["sigma", "uniform", "sigmoid", "shift", "flux_shift", "flux2_shift", "ideogram4_shift",
               "qwen_shift", "krea2_shift", "logsnr", "qinglong_flux", "qinglong_qwen"])
    a("--discrete_flow_shift", type=float, default=1.0)
    a("--sigmoid_scale", type=float, default=1.0)
    a("--weighting_scheme", type=str, default="none",
      choices=["logit_normal", "mode", "cosmap", "sigma_sqrt", "none"])
    a("--logit_mean", type=float, default=0.0)
    a("--logit_std", type=float, default=1.0)
    a("--mode_scale", type=float, default=1.29)
    a("--min_timestep", type=int, default=None)
    a("--max_timestep", type=int, default=None)
    a("--preserve_distribution_shape", action="store_true")
    a("--num_timestep_buckets", type=int, default=None)
    a("--guidance_scale", type=float, default=1.0)
    a("--show_timesteps", type=str, default=None, choices=["image", "console"])
    a("--seed", type=int, default=None)
    a("--max_data_loader_n_workers", type=int, default=8)
    a("--persistent_data_loader_workers", action="store_true")
    a("--output_dir", type=str, default=None)
    a("--output_name", type=str, default=None)
    a("--save_every_n_epochs", type=int, default=None)
    a("--save_every_n_steps", type=int, default=None)
    a("--save_last_n_epochs", type=int, default=None)
    a("--save_last_n_epochs_state", type=int, default=None)
    a("--save_last_n_steps", type=int, default=None)
    a("--save_last_n_steps_state", type=int, default=None)
    a("--save_state", action="store_true")
    a("--save_state_on_train_end", action="store_true")
    a("--resume", type=str, default=None)
    a("--save_precision", type=str, default=None, choices=["float", "fp32", "fp16", "bf16"])
    a("--sample_prompts", type=str, default=None)
    a("--sample_every_n_steps", type=int, default=None)
    a("--sample_every_n_epochs", type=int, default=None)
    a("--sample_at_first", action="store_true")
    a("--logging_dir", type=str, default=None)
    a("--log_with", type=str, default=None, choices=["tensorboard", "wandb", "all"])
    a("--log_prefix", type=str, default=None)
    a("--log_tracker_name", type=str, default=None)
    a("--log_tracker_config", type=str, default=None)
    a("--wandb_run_name", type=str, default=None)
    a("--wandb_api_key", type=str, default=None)
    a("--log_config", action="store_true")
    a("--no_metadata", action="store_true")
    a("--training_comment", type=str, default=None)
    for name in ("title", "author", "description", "license", "tags", "reso", "arch"):
        a(f"--metadata_{name}", type=str, default=None)
    a("--huggingface_repo_id", type=str, default=None)
    a("--huggingface_repo_type", type=str, default=None)
    a("--huggingface_path_in_repo", type=str, default=None)
    a("--huggingface_token", type=str, default=None)
    a("--huggingface_repo_visibility", type=str, default=None)
    a("--save_state_to_huggingface", action="store_true")
    a("--resume_from_huggingface", action="store_true")
    a("--async_upload", action="store_true")
    a("--cuda_allow_tf32", action="store_true")
    a("--cuda_cudnn_benchmark", action="store_true")
    a("--disable_numpy_memmap", action="store_true")
    a("--ddp_timeout", type=int, default=None)
    a("--ddp_gradient_as_bucket_view", action="store_true")
    a("--ddp_static_graph", action="store_true")
    a("--dynamo_backend", type=str, default="NO")
    a("--dynamo_mode", type=str, default=None)
    a("--dynamo_fullgraph", action="store_true")
    a("--dynamo_dynamic", action="store_true")
    a("--compile", action="store_true")
    a("--compile_backend", type=str, default="inductor")
    a("--compile_mode", type=str, default="default")
    a("--compile_dynamic", action="store_true")
    a("--compile_fullgraph", action="store_true")
    a("--compile_cache_size_limit", type=int, default=None)
    return p


def parse_train_args() -> argparse.Namespace:
    parser = train_parser()
    args = parser.parse_args()
    if args.config_file:  # a TOML of CLI options, sections flattened; the command line wins
        config = tomllib.loads(Path(args.config_file).read_text(encoding="utf-8"))
        flat: dict = {}
        for key, value in config.items():
            flat.update(value if isinstance(value, dict) else {key: value})
        known = {action.dest for action in parser._actions}
        parser.set_defaults(**{k: v for k, v in flat.items() if k in known})
        args = parser.parse_args()
    return args


class LossRecorder:
    """train_utils.LossRecorder: the mean of all losses in the first epoch, then a sliding mean
    over the last len(dataloader) micro-batches."""

    def __init__(self) -> None:
        self.loss_list: list[float] = []
        self.loss_total = 0.0

    def add(self, *, epoch: int, step: int, loss: float) -> None:
        if epoch == 0:
            self.loss_list.append(loss)
        else:
            while len(self.loss_list) <= step:
                self.loss_list.append(0.0)
            self.loss_total -= self.loss_list[step]
            self.loss_list[step] = loss
        self.loss_total += loss

    @property
    def moving_average(self) -> float:
        return self.loss_total / len(self.loss_list)


def _die_oom(script: str) -> None:
    root = "/usr/local/lib/python3.10/dist-packages"
    sys.stderr.write(
        "Traceback (most recent call last):\n"
        f'  File "{script}", line 574, in <module>\n    main()\n'
        f'  File "{script}", line 570, in main\n    trainer.train(args)\n'
        f'  File "{os.path.dirname(script)}/training/trainer_base.py", line 2094, in train\n'
        "    self._run_training_loop(\n"
        f'  File "{os.path.dirname(script)}/training/trainer_base.py", line 1921, in _run_training_loop\n'
        "    accelerator.backward(loss)\n"
        f'  File "{root}/accelerate/accelerator.py", line 2473, in backward\n    loss.backward(**kwargs)\n'
        f'  File "{root}/torch/_tensor.py", line 648, in backward\n    torch.autograd.backward(\n'
        f'  File "{root}/torch/autograd/__init__.py", line 353, in backward\n    _engine_run_backward(\n'
        f'  File "{root}/torch/autograd/graph.py", line 824, in _engine_run_backward\n'
        "    return Variable._execution_engine.run_backward(  # Calls into the C++ engine to run the "
        "backward pass\n"
        "           " + "^" * 92 + "\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 48.00 MiB. GPU 0 has a total "
        "capacity of 23.52 GiB of which 31.44 MiB is free. Including non-PyTorch memory, this process has "
        "23.48 GiB memory in use. Of the allocated memory 22.87 GiB is allocated by PyTorch, and 164.01 MiB "
        "is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
        "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)\n")
    sys.stderr.flush()
    unregister()
    os._exit(1)


def _die_crash(script: str) -> None:
    sys.stderr.write(
        "Traceback (most recent call last):\n"
        f'  File "{script}", line 574, in <module>\n    main()\n'
        f'  File "{script}", line 570, in main\n    trainer.train(args)\n'
        f'  File "{os.path.dirname(script)}/training/trainer_base.py", line 1907, in _run_training_loop\n'
        "    model_pred, target = self.call_dit(\n"
        "                         ^^^^^^^^^^^^^^\n"
        "RuntimeError: CUDA error: an illegal memory access was encountered\n"
        "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below "
        "might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
        "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n\n")
    sys.stderr.flush()
    unregister()
    os._exit(1)


class Trainer:
    def __init__(self, args: argparse.Namespace, module: str, config: dict) -> None:
        self.args, self.module, self.config = args, module, config
        self.script = os.path.abspath(sys.argv[0])
        self.started_at = time.time()
        self.session_id = random.randint(0, 2**32)
        self.seed = args.seed if args.seed is not None else random.randint(0, 2**32)
        self.trained_before = 0

    # ---- checks, in upstream's order as far as the reference tells
    def check_args(self) -> None:
        a = self.args
        if a.dataset_config is None:
            raise ValueError("dataset_config is required")
        if not (a.sdpa or a.flash_attn or a.xformers or a.flash3 or a.sage_attn):
            raise ValueError("either --sdpa, --flash-attn, --flash3, --sage-attn or --xformers must be "
                             "specified")
        if a.sage_attn:
            raise ValueError("SageAttention doesn't support training currently.")
        if a.fp8_scaled and not a.fp8_base:
            raise AssertionError("fp8_scaled requires fp8_base")
        if a.log_with in ("tensorboard", "all") and a.logging_dir is None:
            raise ValueError("logging_dir is required when log_with is tensorboard")
        num_blocks = 30 if "1.3B" in a.task else 40
        if a.blocks_to_swap is not None and a.blocks_to_swap > num_blocks - 1:
            raise AssertionError(f"Cannot swap more than {num_blocks - 1} blocks. Requested "
                                 f"{a.blocks_to_swap} blocks to swap.")
        if a.offload_inactive_dit and a.blocks_to_swap:
            raise AssertionError("offload_inactive_dit cannot be used with blocks_to_swap")

    def items(self, datasets: list[Dataset]) -> list[tuple[Dataset, list[dict]]]:
        """Latent caches paired with their TE caches, per dataset."""
        result = []
        for ds in datasets:
            found = []
            d = Path(ds.cache_directory)
            for latent in sorted(d.glob("*_wan.safetensors")) if d.is_dir() else []:
                parts = latent.name[: -len("_wan.safetensors")].split("_")
                key = "_".join(parts[:-2] if ds.is_video else parts[:-1])
                te = d / f"{key}_wan_te.safetensors"
                if not te.exists():
                    warning(DS, f"Text encoder output cache file not found: {te}")
                    continue
                header = read_header(latent)
                meta = header.get("__metadata__", {})
                bucket = tuple(json.loads(meta.get("bucket", "[960, 544, 1]")))
                if self.args.task.startswith(("i2v", "flf2v")) and not any(
                        k.startswith("latents_image") for k in header):
                    raise KeyError("latents_image")
                # wan_train_network.call_dit: Wan 2.1 I2V and FLF2V (not 2.2) read batch["clip"],
                # cached only with --clip (reference §9)
                if self.args.task in ("i2v-14B", "flf2v-14B") and not any(
                        k.startswith("clip_") for k in header):
                    raise KeyError("clip")
                found.append({"key": key, "bucket": bucket})
            result.append((ds, found))
        return result

    def run(self) -> None:
        a = self.args
        self.check_args()
        datasets = load_datasets(a.dataset_config)
        per_ds = self.items(datasets)
        buckets: dict[tuple, int] = {}
        num_items, total_batches = 0, 0
        for ds, found in per_ds:
            counts: dict[tuple, int] = {}
            for it in found:
                counts[it["bucket"]] = counts.get(it["bucket"], 0) + ds.num_repeats
            for b, c in sorted(counts.items()):
                info(DS, f"bucket: {b}, count: {c}")
                buckets[b] = buckets.get(b, 0) + c
                total_batches += math.ceil(c / ds.batch_size)
            num_items += sum(counts.values())
        info(DS, f"total batches: {total_batches}")
        if total_batches == 0:
            raise ValueError("No training items found in the dataset. Please ensure that the latent/Text "
                             "Encoder cache has been created beforehand.")
        out("accelerator device:", "cuda")
        if a.dit is None:
            raise ValueError("path to DiT model is required")
        _load_model(a.dit)
        if a.dit_high_noise:
            _load_model(a.dit_high_noise)
            if a.timestep_boundary is None and a.task not in TASK_BOUNDARY:
                raise ValueError("timestep_boundary is not specified for high noise model")
        if a.timestep_boundary is not None and a.timestep_boundary > 1:
            info(self.module, f"Converted timestep_boundary to 0 to 1 range: {a.timestep_boundary / 1000}")
        # wan/modules/model.py detect_wan_sd_dtype: the dtype of one known tensor in the file's
        # header, then wan_train_network.py asserts mixed precision matches (reference §9)
        dit_dtype = detect_wan_sd_dtype(a.dit)
        if dit_dtype in ("fp16", "bf16") and a.mixed_precision not in (dit_dtype, "no"):
            raise AssertionError(f"DiT weights are in {dit_dtype}, mixed precision must be {dit_dtype} or no")
        if dit_dtype == "fp8" and a.fp8_scaled:
            raise ValueError("DiT weights is already in fp8 format, cannot scale to fp8.")
        torch_dtype = {"fp16": "torch.float16", "bf16": "torch.bfloat16"}.get(a.mixed_precision,
                                                                              "torch.float32")
        if a.fp8_base:
            torch_dtype = "torch.float8_e4m3fn"
        info(self.module, f"DiT dtype: {torch_dtype}, device: cuda:0")
        if a.sample_prompts:
            info(self.module, f"cache Text Encoder outputs for sample prompt: {a.sample_prompts}")
            if not os.path.exists(a.sample_prompts):
                raise FileNotFoundError(2, "No such file or directory", a.sample_prompts)
            info(self.module, f"loading T5: {a.t5}")
            _load_model(a.t5)
        out("import network module:", a.network_module)
        if a.network_module not in ("networks.lora_wan", "networks.loha", "networks.lokr"):
            if a.network_module is None:
                raise AttributeError("'NoneType' object has no attribute 'startswith'")
            raise ModuleNotFoundError(f"No module named '{a.network_module}'")
        self.dim = a.network_dim if a.network_dim is not None else 4
        info("musubi_tuner.networks.lora", f"create LoRA network. base dim (rank): {self.dim}, "
             f"alpha: {a.network_alpha}")
        info("musubi_tuner.networks.lora", "create LoRA for U-Net/DiT: "
             f"{400 if '14B' in a.task else 300} modules.")
        out("prepare optimizer, data loader etc.")
        opt = a.optimizer_type
        builtin = {"adamw": "torch.optim.adamw.AdamW", "adamw8bit": "bitsandbytes.optim.adamw.AdamW8bit",
                   "adafactor": "transformers.optimization.Adafactor"}
        if opt.lower() in builtin:
            self.optimizer_name = builtin[opt.lower()]
        elif "." in opt:
            self.optimizer_name = opt
        elif opt in ("Adam", "SGD", "RMSprop", "Adagrad", "AdamW", "Adamax", "NAdam", "RAdam", "Lion"):
            self.optimizer_name = f"torch.optim.{opt.lower()}.{opt}"
        else:
            raise AttributeError(f"module 'torch.optim' has no attribute '{opt}'")
        if a.optimizer_args:
            self.optimizer_name += "(" + ",".join(a.optimizer_args) + ")"

        ga = a.gradient_accumulation_steps
        steps_per_epoch = math.ceil(total_batches / ga)
        if a.max_train_epochs is not None:
            a.max_train_steps = a.max_train_epochs * steps_per_epoch
            out(f"override steps. steps for {a.max_train_epochs} epochs is / 指定エポックまでのステップ数: "
                f"{a.max_train_steps}")
        precision = {"fp16": "torch.float16", "bf16": "torch.bfloat16"}.get(a.save_precision, "torch.float32")
        how = "(default)" if a.save_precision is None else f"(--save_precision {a.save_precision})"
        info(TB, f"network weights will be saved as {precision} {how}")
        self.save_dtype = {"fp16": "F16", "bf16": "BF16"}.get(a.save_precision, "F32")
        if a.resume:
            info(TB, f"resume training from local state: {a.resume}")
            info("accelerate.accelerator", f"Loading states from {a.resume}")
            if not os.path.isdir(a.resume):
                raise ValueError(f"Tried to find {a.resume} but folder does not exist")
            model = Path(a.resume) / "model.safetensors"
            if model.exists():
                meta = read_header(model).get("__metadata__", {})
                self.trained_before = int(meta.get("musubi_double_trained_steps", "0"))

        num_epochs = math.ceil(a.max_train_steps / steps_per_epoch)
        self.num_items, self.total_batches, self.num_epochs = num_items, total_batches, num_epochs
        self.datasets = datasets
        out("running training / 学習開始")
        out(f"  num train items / 学習画像、動画数: {num_items}")
        out(f"  num batches per epoch / 1epochのバッチ数: {total_batches}")
        out(f"  num epochs / epoch数: {num_epochs}")
        out("  batch size per device / バッチサイズ: " + ", ".join(str(d.batch_size) for d in datasets))
        out(f"  gradient accumulation steps / 勾配を合計するステップ数 = {ga}")
        out(f"  total optimization steps / 学習ステップ数: {a.max_train_steps}")
        self.loop(total_batches, num_epochs)

    # ---- the loop
    def loss_at(self, micro: int, rng: random.Random) -> float:
        total = max(self.args.max_train_steps * self.args.gradient_accumulation_steps, 1)
        t = (self.trained_before * self.args.gradient_accumulation_steps + micro) / total
        return max(0.004, 0.03 + 0.09 * math.exp(-3.0 * t) + rng.gauss(0.0, 0.006))

    def loop(self, batches_per_epoch: int, num_epochs: int) -> None:
        a, cfg = self.args, self.config
        fail_at = cfg["fail_at"] or max(1, a.max_train_steps // 2)
        mode, step_seconds = cfg["mode"], cfg["step_seconds"]
        rng = random.Random(self.seed)
        workers = min(a.max_data_loader_n_workers, os.cpu_count() or 1)
        if a.persistent_data_loader_workers and workers == 0:
            # torch.utils.data.DataLoader.__init__
            raise ValueError("persistent_workers option needs num_workers > 0")
        bar = Bar(a.max_train_steps, desc="steps")
        recorder = LossRecorder()
        global_step, micro = 0, 0
        if a.sample_at_first:
            self.sample(0, 0, by_epoch=True)
        for epoch in range(num_epochs):
            out(f"\nepoch {epoch + 1}/{num_epochs}")
            for _ in range(max(workers, 1)):
                info(DS, f"epoch is incremented. current_epoch: {epoch}, epoch: {epoch + 1}")
            for step in range(batches_per_epoch):
                sync = (step + 1) % a.gradient_accumulation_steps == 0 or step + 1 == batches_per_epoch
                if sync and global_step + 1 == fail_at:
                    if mode == "oom":
                        _die_oom(self.script)
                    if mode == "crash":
                        _die_crash(self.script)
                    if mode == "killed":
                        unregister()
                        os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(step_seconds / max(a.gradient_accumulation_steps, 1))
                loss = self.loss_at(micro, rng)
                micro += 1
                if sync:
                    if global_step == 0:
                        bar.reset()
                    bar.update(1)
                    global_step += 1
                    if mode == "nan" and global_step >= fail_at:
                        loss = float("nan")
                    if a.sample_every_n_steps and global_step % a.sample_every_n_steps == 0:
                        self.sample(global_step, epoch, by_epoch=False)
                    if a.save_every_n_steps and global_step % a.save_every_n_steps == 0:
                        self.save_model(STEP_FILE_NAME.format(a.output_name, global_step), global_step, epoch)
                        if a.save_state:
                            self.save_state(STEP_STATE_NAME.format(a.output_name, global_step), global_step,
                                            f"saving state at step {global_step}")
                        self.remove_old_steps(global_step)
                elif mode == "nan" and global_step + 1 >= fail_at:
                    loss = float("nan")
                recorder.add(epoch=epoch, step=step, loss=loss)
                if a.scale_weight_norms:
                    # trainer_base.py: progress_bar.set_postfix(**{**max_mean_logs, **logs}),
                    # the key-norm figures first (reference §9)
                    bar.set_postfix(**{"Average key norm": 0.9 + rng.random() / 10,
                                       "Keys Scaled": rng.randint(0, 3),
                                       "avr_loss": recorder.moving_average})
                else:
                    bar.set_postfix(avr_loss=recorder.moving_average)
                if global_step >= a.max_train_steps:
                    break
            if a.save_every_n_epochs is not None:
                if (epoch + 1) % a.save_every_n_epochs == 0 and (epoch + 1) < num_epochs:
                    self.save_model(EPOCH_FILE_NAME.format(a.output_name, epoch + 1), global_step, epoch + 1)
                    if a.save_last_n_epochs:
                        old = epoch + 1 - a.save_every_n_epochs * a.save_last_n_epochs
                        self.remove(EPOCH_FILE_NAME.format(a.output_name, old) + ".safetensors")
                    if a.save_state:
                        self.save_state(EPOCH_STATE_NAME.format(a.output_name, epoch + 1), global_step,
                                        f"saving state at epoch {epoch + 1}")
                        if a.save_last_n_epochs_state or a.save_last_n_epochs:
                            n = a.save_last_n_epochs_state or a.save_last_n_epochs
                            old = epoch + 1 - a.save_every_n_epochs * n
                            self.remove_state(EPOCH_STATE_NAME.format(a.output_name, old))
            if a.sample_every_n_epochs and (epoch + 1) % a.sample_every_n_epochs == 0:
                self.sample(global_step, epoch + 1, by_epoch=True)
            if global_step >= a.max_train_steps:
                break
        bar.close()
        if a.save_state or a.save_state_on_train_end:
            self.save_state(LAST_STATE_NAME.format(a.output_name), global_step, "saving last state.")
        self.save_model(a.output_name, global_step, num_epochs)
        info(TB, "model saved.")

    # ---- outputs
    def path(self, name: str) -> str:
        return os.path.join(self.args.output_dir, name)  # TypeError without --output_dir, as upstream

    def metadata(self, steps: int, epoch: int) -> dict[str, str]:
        a = self.args
        minimal = {"ss_base_model_version": "wan", "ss_network_module": a.network_module,
                   "ss_network_dim": str(self.dim), "ss_network_alpha": str(a.network_alpha),
                   "ss_network_args": json.dumps(dict(x.split("=", 1) for x in a.network_args if "=" in x))
                   if a.network_args else None}
        modelspec = {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "wan2.1/lora",
                     "modelspec.implementation": "https://github.com/Wan-Video/Wan2.1",
                     "modelspec.title": a.metadata_title or a.output_name,
                     "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started_at))}
        if a.min_timestep is not None or a.max_timestep is not None:
            modelspec["modelspec.timestep_range"] = f"{a.min_timestep or 0},{a.max_timestep or 1000}"
        for key in ("author", "description", "license", "tags"):
            if getattr(a, f"metadata_{key}"):
                modelspec[f"modelspec.{key}"] = getattr(a, f"metadata_{key}")
        if a.no_metadata:
            return {k: v for k, v in {**minimal, **modelspec}.items() if v is not None}
        datasets = []
        for d in self.datasets:
            entry = {"is_image_dataset": not d.is_video, "resolution": list(d.resolution),
                     "batch_size_per_device": d.batch_size, "num_repeats": d.num_repeats,
                     "enable_bucket": d.enable_bucket, "bucket_no_upscale": d.bucket_no_upscale,
                     "caption_extension": d.caption_extension}
            if d.is_video:
                entry.update({"video_directory": os.path.basename(d.video_directory or ""),
                              "frame_extraction": d.frame_extraction, "target_frames": d.target_frames,
                              "frame_stride": d.frame_stride, "frame_sample": d.frame_sample,
                              "max_frames": d.max_frames, "source_fps": d.source_fps})
            else:
                entry["image_directory"] = os.path.basename(d.image_directory or "")
            datasets.append(entry)
        full = {
            "ss_session_id": str(self.session_id), "ss_training_started_at": str(self.started_at),
            "ss_output_name": a.output_name, "ss_learning_rate": str(a.learning_rate),
            "ss_num_train_items": str(self.num_items), "ss_num_batches_per_epoch": str(self.total_batches),
            "ss_num_epochs": str(self.num_epochs),
            "ss_gradient_checkpointing": str(a.gradient_checkpointing),
            "ss_gradient_checkpointing_cpu_offload": str(a.gradient_checkpointing_cpu_offload),
            "ss_gradient_accumulation_steps": str(a.gradient_accumulation_steps),
            "ss_max_train_steps": str(a.max_train_steps), "ss_lr_warmup_steps": str(a.lr_warmup_steps),
            "ss_lr_scheduler": a.lr_scheduler, **{k: v for k, v in minimal.items() if v is not None},
            "ss_network_dropout": str(a.network_dropout), "ss_mixed_precision": a.mixed_precision,
            "ss_seed": str(self.seed), "ss_training_comment": str(a.training_comment),
            "ss_optimizer": self.optimizer_name, "ss_max_grad_norm": str(a.max_grad_norm),
            "ss_fp8_base": str(bool(a.fp8_base)), "ss_full_fp16": str(bool(a.full_fp16)),
            "ss_full_bf16": str(bool(a.full_bf16)), "ss_weighting_scheme": a.weighting_scheme,
            "ss_logit_mean": str(a.logit_mean), "ss_logit_std": str(a.logit_std),
            "ss_mode_scale": str(a.mode_scale), "ss_guidance_scale": str(a.guidance_scale),
            "ss_timestep_sampling": a.timestep_sampling, "ss_sigmoid_scale": str(a.sigmoid_scale),
            "ss_discrete_flow_shift": str(a.discrete_flow_shift), "ss_datasets": json.dumps(datasets),
            "ss_sd_model_name": os.path.basename(a.dit),
            "ss_vae_name": os.path.basename(a.vae) if a.vae else "None",
            "ss_training_finished_at": str(time.time()), "ss_steps": str(steps), "ss_epoch": str(epoch),
        }
        return {**full, **modelspec}

    def tensors(self, steps: int) -> dict:
        rng = random.Random(self.seed * 7919 + self.trained_before + steps)
        dim, width = self.dim, 4
        tensors = {}
        for module in ("lora_unet_blocks_0_self_attn_q", "lora_unet_blocks_0_ffn_0"):
            down = [rng.gauss(0, 0.02) for _ in range(dim * width)]
            up = [rng.gauss(0, 0.001 * (1 + steps)) for _ in range(width * dim)]
            tensors[f"{module}.alpha"] = tiny_tensor([float(self.args.network_alpha)], self.save_dtype, [])
            tensors[f"{module}.lora_down.weight"] = tiny_tensor(down, self.save_dtype, [dim, width])
            tensors[f"{module}.lora_up.weight"] = tiny_tensor(up, self.save_dtype, [width, dim])
        return tensors

    def save_model(self, name: str, steps: int, epoch: int) -> None:
        ckpt = self.path(name + ".safetensors")
        out(f"\nsaving checkpoint: {ckpt}")
        os.makedirs(self.args.output_dir, exist_ok=True)
        tensors = self.tensors(steps)
        metadata = self.metadata(steps, epoch)
        public = {k: v for k, v in metadata.items() if not k.startswith("ss_")}
        body = safetensors_bytes(tensors, public)
        metadata["sshs_model_hash"] = hashlib.sha256(body).hexdigest()
        metadata["sshs_legacy_hash"] = hashlib.sha256(body[0x100000:0x110000]).hexdigest()[:8]
        write_safetensors(Path(ckpt), tensors, metadata)

    def save_state(self, name: str, steps: int, message: str) -> None:
        info(TU, message)
        d = Path(self.path(name))
        d.mkdir(parents=True, exist_ok=True)
        write_safetensors(d / "model.safetensors", self.tensors(steps),
                          {"format": "pt", "musubi_double_trained_steps": str(self.trained_before + steps)})
        for f in ("optimizer.bin", "scheduler.bin"):
            (d / f).write_bytes(b"PK\x03\x04" + hashlib.sha256(f"{f}{steps}".encode()).digest())
        (d / "random_states_0.pkl").write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}\x94.")

    def remove(self, filename: str) -> None:
        path = self.path(filename)
        if os.path.exists(path):
            out(f"removing old checkpoint: {path}")
            os.remove(path)

    def remove_state(self, name: str) -> None:
        path = self.path(name)
        if os.path.isdir(path):
            info(TU, f"removing old state: {path}")
            shutil.rmtree(path)

    def remove_old_steps(self, step: int) -> None:
        a = self.args
        rules = ((a.save_last_n_steps, False), (a.save_last_n_steps_state or a.save_last_n_steps, True))
        for keep, state in rules:
            if not keep or (state and not a.save_state):
                continue
            old = step - keep - 1
            old -= old % a.save_every_n_steps
            if old > 0:
                if state:
                    self.remove_state(STEP_STATE_NAME.format(a.output_name, old))
                else:
                    self.remove(STEP_FILE_NAME.format(a.output_name, old) + ".safetensors")

    def sample(self, steps: int, epoch: int, by_epoch: bool) -> None:
        a = self.args
        if not a.sample_prompts:
            return
        info(TB, f"generating sample images at step / サンプル画像生成 ステップ: {steps}")
        if not os.path.isfile(a.sample_prompts):
            log("ERROR", TB, f"No prompt file / プロンプトファイルがありません: {a.sample_prompts}")
            return
        prompts = []
        for line in Path(a.sample_prompts).read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            prompts.append(parse_prompt(line))
        sample_dir = Path(self.path("sample"))
        sample_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d%H%M%S")
        suffix = f"e{epoch:06d}" if by_epoch else f"{steps:06d}"
        for idx, p in enumerate(prompts):
            info(TB, f"prompt: {p['prompt']}")
            info(TB, f"height: {p['height']}")
            info(TB, f"width: {p['width']}")
            info(TB, f"frame count: {p['frame_count']}")
            info(TB, f"sample steps: {p['sample_steps']}")
            info(TB, f"guidance scale: {p['guidance_scale']}")
            info(TB, f"discrete flow shift: {p['discrete_flow_shift']}")
            if p["seed"] is not None:
                info(TB, f"seed: {p['seed']}")
            info(TB, f"negative prompt: {p['negative_prompt']}")
            info(TB, f"cfg scale: {p['cfg_scale']}")
            if a.task.startswith("i2v"):
                if not p.get("image_path"):
                    log("ERROR", TB, "No image_path for i2v model")
                    continue
                if not os.path.isfile(p["image_path"]):  # PIL.Image.open in process_sample_prompts
                    raise FileNotFoundError(f"[Errno 2] No such file or directory: '{p['image_path']}'")
                info(TB, f"image path: {p['image_path']}")
            base = (f"{a.output_name + '_' if a.output_name else ''}{suffix}_{idx:02d}_{stamp}"
                    f"{'_' + str(p['seed']) if p['seed'] is not None else ''}")
            if p["frame_count"] > 1:
                write_mp4(sample_dir / f"{base}.mp4", p["width"], p["height"], p["frame_count"])
            else:
                write_png(sample_dir / f"{base}_000.png", p["width"], p["height"])


WAN_NEGATIVE_PROMPT = (  # wan/configs: the default negative prompt for sampling
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，"
    "最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，"
    "画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"
    "杂乱的背景，三条腿，背景人很多，倒着走")


def parse_prompt(line: str) -> dict:
    parts = line.split(" --")
    p = {"prompt": parts[0].strip(), "width": 256, "height": 256, "frame_count": 1, "seed": None,
         "sample_steps": 20, "guidance_scale": 5.0, "discrete_flow_shift": 14.5, "cfg_scale": None,
         "negative_prompt": WAN_NEGATIVE_PROMPT,
         "image_path": None}
    for opt in parts[1:]:
        key, _, value = opt.strip().partition(" ")
        key, value = key.lower(), value.strip()
        try:
            if key == "w":
                p["width"] = int(value) // 8 * 8
            elif key == "h":
                p["height"] = int(value) // 8 * 8
            elif key == "f":
                p["frame_count"] = (int(value) - 1) // 4 * 4 + 1
            elif key == "d":
                p["seed"] = int(value)
            elif key == "s":
                p["sample_steps"] = max(1, min(1000, int(value)))
            elif key == "g":
                p["guidance_scale"] = float(value)
            elif key == "fs":
                p["discrete_flow_shift"] = float(value)
            elif key == "l":
                p["cfg_scale"] = float(value)
            elif key == "n":
                p["negative_prompt"] = value
            elif key == "i":
                p["image_path"] = value
        except ValueError:
            pass
    return p


def write_png(path: Path, width: int, height: int) -> None:
    raw = b"".join(b"\x00" + b"\x80" * (width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(raw, 9))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + idat + chunk(b"IEND", b""))


def write_mp4(path: Path, width: int, height: int, frames: int) -> None:
    if shutil.which("ffmpeg"):
        r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                            f"color=c=gray:s={width}x{height}:r=24", "-frames:v", str(frames),
                            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                           stdin=subprocess.DEVNULL, capture_output=True)
        if r.returncode == 0:
            return
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")


def train_main(module: str) -> None:
    register("wan_train_network")
    config = settings()
    args = parse_train_args()
    Trainer(args, module, config).run()
    sys.exit(0)
