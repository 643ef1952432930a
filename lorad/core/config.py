"""Workspace configuration: `lorad.toml`, parsed with tomllib and validated at load.

The schema is data (:data:`SCHEMA`): every key with its type and default. An unknown key or a
wrong type is a :class:`ConfigError` naming the key, the file and the line, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorad.core.errors import LoradError

# section -> key -> (type or tuple of types, default)
SCHEMA: dict[str, dict[str, tuple[Any, Any]]] = {
    "workspace": {
        "name": (str, ""),
        "media_dir": (str, "media"),
        "downloads_dir": (str, "downloads"),
    },
    "daemon": {
        "max_concurrent": (int, 4),
        "media_workers": (int, 0),  # 0: one per core
        "lease_seconds": (int, 60),
        "poll_interval": ((int, float), 0.5),
        "retry_base_seconds": ((int, float), 2.0),
        "retry_max_seconds": ((int, float), 300.0),
        "max_attempts": (int, 5),
        "shutdown_grace_seconds": ((int, float), 20.0),  # jobs finish, then are handed back
        "log_max_bytes": (int, 5_000_000),
        "log_backups": (int, 3),
    },
    "tui": {
        "refresh_interval": ((int, float), 0.25),
        "player": (str, "auto"),
        "keys": (dict, {}),  # [tui.keys]: binding id -> key (tui/keys.py)
    },
    "training": {
        "poll_seconds": ((int, float), 1.0),  # remote log reads while a stage runs
        "reconnect_budget_seconds": ((int, float), 900.0),
        "runpod_poll_seconds": ((int, float), 5.0),
        "runpod_start_timeout_seconds": ((int, float), 900.0),
        # a checkpoint whose header gives no size (a torch .pt) is pulled once unchanged this long
        "checkpoint_settle_seconds": ((int, float), 15.0),
    },
    "generations": {
        "queue_url": (str, ""),  # empty: fal's queue (or $FAL_QUEUE_URL)
        "poll_seconds": ((int, float), 2.0),  # first status poll; grows x1.5 to poll_max_seconds
        "poll_max_seconds": ((int, float), 10.0),  # fal keeps results only minutes: stay well under
        "max_output_mb": (int, 500),  # refuse larger downloads
        "request_timeout_seconds": ((int, float), 120.0),  # one HTTP call to the service
        "retry_after_max_seconds": ((int, float), 60.0),  # the longest Retry-After honoured
        "check_profile": (str, "quality"),  # output checks: quality | smoke
        "min_frame_diff": ((int, float), -1.0),  # frozen below this; -1: the check profile's
    },
    "drafts": {  # lorad captions draft (lorad.generation.drafting, lorad.captions.shaping)
        "model": (str, ""),  # empty: by the dataset's media (gemini-flash for video)
        "examples": (int, 3),  # captions a person wrote, sent as style examples
        "max_tokens": (int, 300),  # of each answer
        "strip_phrases": (list, []),  # empty: the built-in list of model openings
    },
    "notify": {  # the URLs come from $LORAD_NOTIFY_URLS only (they carry tokens)
        "events": (list, ["run_finished", "run_failed", "run_stopped", "generations_done",
                          "pod_idle", "pod_stopped", "daemon_error"]),
    },
    "publish": {
        "endpoint": (str, ""),  # empty: https://huggingface.co (or $HF_ENDPOINT)
    },
    "ingest": {
        "near_duplicate_distance": (int, 10),  # max Hamming distance of 192-bit dHashes
        "scene_threshold": ((int, float), 0.3),  # ffmpeg scene score that starts a new shot
        "min_shot_seconds": ((int, float), 1.0),
    },
}

# What a number may be, as (lowest, highest); None: no bound. A value outside is refused with
# file, line and key (a lease of 0 s or a NaN poll interval would break the daemon quietly).
LIMITS: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("daemon", "max_concurrent"): (1, None), ("daemon", "media_workers"): (0, 256),
    ("daemon", "lease_seconds"): (3, None), ("daemon", "poll_interval"): (0.01, 60),
    ("daemon", "retry_base_seconds"): (0.01, None), ("daemon", "retry_max_seconds"): (0.01, None),
    ("daemon", "max_attempts"): (1, None), ("daemon", "shutdown_grace_seconds"): (0, 3600),
    ("daemon", "log_max_bytes"): (10_000, None), ("daemon", "log_backups"): (0, 100),
    ("tui", "refresh_interval"): (0.02, 60),
    ("training", "poll_seconds"): (0.01, 3600), ("training", "reconnect_budget_seconds"): (0, None),
    ("training", "runpod_poll_seconds"): (0.01, 3600),
    ("training", "runpod_start_timeout_seconds"): (1, None),
    ("training", "checkpoint_settle_seconds"): (0, 3600),
    ("generations", "poll_seconds"): (0.01, 3600), ("generations", "poll_max_seconds"): (0.01, 3600),
    ("generations", "max_output_mb"): (1, None),
    ("drafts", "examples"): (0, 20), ("drafts", "max_tokens"): (64, 4096),
    ("generations", "retry_after_max_seconds"): (0, 86400),
    ("generations", "request_timeout_seconds"): (1, 3600),
    ("generations", "min_frame_diff"): (-1, 1),
    ("ingest", "near_duplicate_distance"): (0, 192), ("ingest", "scene_threshold"): (0, 1),
    ("ingest", "min_shot_seconds"): (0, None),
}

# Named model profiles under [profiles.NAME]; values checked again by lorad.media.profiles.
PROFILE_KEYS: dict[str, Any] = {
    "base": str, "media": str, "width": int, "height": int, "fps": (int, float),
    "frames": int, "min_frames": int, "max_frames": int, "crop": str, "orientation": str,
    "codec": str, "crf": int, "preset": str, "pix_fmt": str, "audio": bool, "description": str,
    "format": str, "sample_rate": int, "channels": int, "min_seconds": (int, float),
    "max_seconds": (int, float), "audio_bitrate": str,
}

# Per-kind job concurrency lives under [daemon.concurrency]: kind -> int.
_FREE_TABLES = {("daemon", "concurrency"): int}


class ConfigError(LoradError):
    """A config problem, phrased so a person can fix it: file, line, key, what was expected."""


TRAINERS_DIR = "trainers"  # beside lorad.toml: one NAME.toml per declared trainer


@dataclass(frozen=True)
class DeclaredTable:
    """A table declaring a trainer or a captioner, and where it was written: `prefix` is its
    header in the file (`trainers.NAME` in lorad.toml, empty in a file of its own)."""

    name: str
    table: dict[str, Any]
    path: Path
    text: str
    prefix: str


@dataclass
class Config:
    path: Path | None
    values: dict[str, dict[str, Any]]
    concurrency: dict[str, int] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # "profiles.x.key" -> line, for errors
    # [trainers.NAME] tables and trainers/NAME.toml files beside lorad.toml, as written (checked
    # by lorad.training.trainers.command, which needs their file and text to name lines)
    trainers: dict[str, DeclaredTable] = field(default_factory=dict)
    captioners: dict[str, DeclaredTable] = field(default_factory=dict)  # [captioners.NAME]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # [presets.NAME], raw

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]


def defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: d for k, (_t, d) in keys.items()} for s, keys in SCHEMA.items()}


def load(path: Path | None) -> Config:
    """Read and validate `lorad.toml`; a missing file gives the defaults."""
    values = defaults()
    concurrency: dict[str, int] = {}
    profiles: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    if path is None or not path.exists():
        return Config(path, values, concurrency)
    text = path.read_text(encoding="utf-8")
    declared = _trainer_files(path.parent / TRAINERS_DIR)
    captioners: dict[str, DeclaredTable] = {}
    presets: dict[str, dict[str, Any]] = {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for section, table in data.items():
        where = _locate(text, section, None)
        if section == "profiles" and isinstance(table, dict):
            profiles = _load_profiles(path, text, table, lines)
            continue
        if section == "presets" and isinstance(table, dict):  # checked by captions.presets
            for name, keys in table.items():
                if not isinstance(keys, dict):
                    raise ConfigError(f"{path}:{_locate(text, 'presets', name)}: presets."
                                      f"{name} must be a table [presets.{name}]")
                presets[name] = dict(keys)
            continue
        if section in ("trainers", "captioners") and isinstance(table, dict):
            into = declared if section == "trainers" else captioners
            for name, source in _declared_tables(path, text, section, table).items():
                if name in into:
                    raise ConfigError(f"{path}:{_locate(text, f'{section}.{name}', None)}: "
                                      f"{section}.{name} is also declared in "
                                      f"{into[name].path}; keep one")
                into[name] = source
            continue
        if section not in SCHEMA:
            raise ConfigError(
                f"{path}:{where}: unknown section [{section}] "
                f"(known: {', '.join(sorted([*SCHEMA, 'profiles', 'trainers', 'captioners', 'presets']))})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}:{where}: '{section}' must be a table [{section}]")
        for key, value in table.items():
            line = _locate(text, section, key)
            free = _FREE_TABLES.get((section, key))
            if free is not None:
                if not isinstance(value, dict):
                    raise ConfigError(f"{path}:{line}: {section}.{key} must be a table")
                for sub, subval in value.items():
                    if not _is(subval, free):
                        raise ConfigError(
                            f"{path}:{_locate(text, f'{section}.{key}', sub)}: "
                            f"{section}.{key}.{sub} must be {_tname(free)}, "
                            f"got {type(subval).__name__}"
                        )
                    if subval < 1 or subval > 1000:
                        raise ConfigError(
                            f"{path}:{_locate(text, f'{section}.{key}', sub)}: "
                            f"{section}.{key}.{sub} must be 1 to 1000, got {subval!r} (0 "
                            "would leave those jobs queued forever)")
                    concurrency[sub] = subval
                continue
            if key not in SCHEMA[section]:
                raise ConfigError(
                    f"{path}:{line}: unknown key '{section}.{key}' "
                    f"(known in [{section}]: {', '.join(sorted(SCHEMA[section]))})"
                )
            expected, _default = SCHEMA[section][key]
            if not _is(value, expected):
                raise ConfigError(
                    f"{path}:{line}: {section}.{key} must be {_tname(expected)}, "
                    f"got {type(value).__name__} {value!r}"
                )
            problem = out_of_range(value, LIMITS.get((section, key), (None, None)))
            if problem:
                raise ConfigError(f"{path}:{line}: {section}.{key} {problem}")
            values[section][key] = value
    return Config(path, values, concurrency, profiles, lines, declared, captioners, presets)


def _declared_tables(path: Path, text: str, section: str, table: dict
                     ) -> dict[str, DeclaredTable]:
    """[trainers.NAME] / [captioners.NAME] tables, as written (checked by their module)."""
    found = {}
    for name, keys in table.items():
        if not isinstance(keys, dict):
            raise ConfigError(f"{path}:{_locate(text, section, name)}: {section}.{name} must be "
                              f"a table [{section}.{name}]")
        found[name] = DeclaredTable(name, keys, path, text, f"{section}.{name}")
    return found


def _trainer_files(folder: Path) -> dict[str, DeclaredTable]:
    """trainers/NAME.toml beside lorad.toml: a trainer each, its keys at the top."""
    found: dict[str, DeclaredTable] = {}
    if not folder.is_dir():
        return found
    for file in sorted(folder.glob("*.toml")):
        text = file.read_text(encoding="utf-8")
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        found[file.stem] = DeclaredTable(file.stem, table, file, text, "")
    return found


def _load_profiles(path: Path, text: str, table: dict, lines: dict[str, int]) -> dict:
    profiles: dict[str, dict[str, Any]] = {}
    for name, keys in table.items():
        where = _locate(text, f"profiles.{name}", None)
        if not isinstance(keys, dict):
            raise ConfigError(f"{path}:{where}: profiles.{name} must be a table [profiles.{name}]")
        for key, value in keys.items():
            line = _locate(text, f"profiles.{name}", key)
            lines[f"profiles.{name}.{key}"] = line
            if key not in PROFILE_KEYS:
                raise ConfigError(
                    f"{path}:{line}: unknown key 'profiles.{name}.{key}' "
                    f"(known: {', '.join(sorted(PROFILE_KEYS))})")
            if not _is(value, PROFILE_KEYS[key]):
                raise ConfigError(
                    f"{path}:{line}: profiles.{name}.{key} must be {_tname(PROFILE_KEYS[key])}, "
                    f"got {type(value).__name__} {value!r}")
        lines[f"profiles.{name}"] = where
        profiles[name] = dict(keys)
    return profiles


def out_of_range(value: Any, limits: tuple[float | None, float | None]) -> str | None:
    """Why a number is not acceptable, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    low, high = limits
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            return f"must be at least {low:g}, got {value!r}"
        if high is not None and value > high:
            return f"must be at most {high:g}, got {value!r}"
    return None


def _is(value: Any, expected: Any) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # TOML true is not a number
    return isinstance(value, types)


def _tname(expected: Any) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _locate(text: str, section: str, key: str | None) -> int:
    """Best-effort line number of a key (tomllib gives values, not positions)."""
    current = None
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
    for number, line in enumerate(text.splitlines(), start=1):
        match = header.match(line)
        if match:
            current = match.group(1).replace('"', "").replace(" ", "")
            if key is None and current == section:
                return number
            continue
        if key is not None and current == section:
            if re.match(rf'^\s*"?{re.escape(key)}"?\s*=', line):
                return number
    return 1
