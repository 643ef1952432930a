"""Shot chains: image-to-video shots generated in a row from a TOML shot list, each able to start
from the exact last frame of the shot before (`chain_last_frame`), ending in one concatenated
video. Owner of the `chains` table.

A shot list (`lorad chain run FILE`)::

    name = "truck-ride"                     # default: the file's stem
    endpoint = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
    lora = "truck-e8"                       # optional, with scale
    scale = 1.0
    fps = 16                                # frames_per_second
    resolution = "720p"
    negative_prompt = "blurry, text"
    seed = 42                               # shot i uses 42 + i; "random" for new seeds
    chain_last_frame = true
    image = "start.png"                     # the first shot's start image (relative to FILE)
    params = { num_inference_steps = 30 }   # any other endpoint parameter

    [[shots]]
    prompt = "TRK, the truck pulls out of the barn"
    duration = 5.0                          # seconds
    [[shots]]
    prompt = "TRK, the truck drives down the dirt road"
    duration = 3
    image = "road.png"                      # this shot's own start image
    params = { guidance_scale = 4 }

Frames per shot follow the 4n+1 rule: the nearest count at or above the target
(`((t - 1 + 3) // 4) * 4 + 1`; 5 s at 24 fps = 120 -> 121), clamped to the endpoint's range;
both numbers are kept. Each shot is a generation (`chain_id`, `shot_index`); the chain keeps
the current generation of each shot, so a retake of shot k runs k..n again and keeps the rest.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lorad.core import jobs, store
from lorad.core.errors import LoradError
from lorad.core.store import transaction
from lorad.generation import endpoints, generations, loras

JOB_KIND = "chain.run"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
GLOBAL_KEYS = {"name", "endpoint", "lora", "scale", "fps", "resolution", "negative_prompt",
               "seed", "chain_last_frame", "image", "params", "shots"}
SHOT_KEYS = {"prompt", "duration", "image", "params", "seed"}
STATES = ("queued", "running", "completed", "failed", "cancelled")


class ChainError(LoradError):
    pass


@dataclass
class Shot:
    prompt: str
    duration: float
    image: str | None = None  # this shot's own start image (absolute)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None


@dataclass
class ShotList:
    name: str
    endpoint: str
    shots: list[Shot]
    lora: str | None = None
    scale: float = 1.0
    fps: int | None = None
    resolution: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None  # shot i uses seed + i; None: a new random seed per shot
    chain_last_frame: bool = False
    image: str | None = None  # the start image of every shot that has no other (absolute)
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShotList:
        data = dict(data)
        data["shots"] = [Shot(**s) for s in data["shots"]]
        return cls(**data)


def quantized_frames(target: int) -> int:
    """The nearest 4n+1 count at or above `target` (the seed's rule)."""
    if target <= 1:
        return 1
    return ((target - 1 + 3) // 4) * 4 + 1


def frames_for(duration: float, fps: int, endpoint: endpoints.Endpoint) -> tuple[int, int]:
    """(target, effective) frames of a shot: duration x fps, then 4n+1 and the endpoint's
    range (its bounds taken to the 4n+1 counts inside them)."""
    target = round(duration * fps)
    frames = quantized_frames(target)
    spec = endpoint.params.get("num_frames")
    if spec is not None:
        if spec.high is not None and frames > spec.high:
            frames = int((spec.high - 1) // 4 * 4 + 1)
        if spec.low is not None and frames < spec.low:
            frames = quantized_frames(int(spec.low))
    return target, frames


# ---- reading a shot list ------------------------------------------------------------------

def parse(path: Path) -> ShotList:
    """Read and check a shot list; every problem is named with the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ChainError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ChainError(f"{path}: not valid TOML ({exc})") from None
    where = str(path)
    problems = [f"{where}: unknown key {k!r} (known: {', '.join(sorted(GLOBAL_KEYS))})"
                for k in sorted(set(data) - GLOBAL_KEYS)]

    def image(value: Any, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            problems.append(f"{where}: {key} must be a file name")
            return None
        found = (path.parent / value).expanduser().resolve()
        if not found.is_file():
            problems.append(f"{where}: {key}: no such file {found}")
        elif found.suffix.lower() not in generations.IMAGE_SUFFIXES:
            problems.append(f"{where}: {key}: use a {'/'.join(generations.IMAGE_SUFFIXES)} "
                            "image")
        return str(found)

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{where}: name {name!r}: use letters, digits, '.', '_' or '-' (up to "
                        "64)")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str):
        problems.append(f"{where}: endpoint is required (e.g. "
                        "fal-ai/wan/v2.2-a14b/image-to-video/lora)")
    seed = data.get("seed", "random")
    if seed != "random" and (isinstance(seed, bool) or not isinstance(seed, int)):
        problems.append(f"{where}: seed must be a whole number or \"random\"")
    for key, kind in (("fps", int), ("scale", (int, float)), ("chain_last_frame", bool),
                      ("params", dict), ("lora", str), ("resolution", str),
                      ("negative_prompt", str)):
        value = data.get(key)
        if value is not None and (not isinstance(value, kind)
                                  or (isinstance(value, bool) and kind is not bool)):
            problems.append(f"{where}: {key} has the wrong type ({type(value).__name__})")
    shots = []
    raw_shots = data.get("shots")
    if not isinstance(raw_shots, list) or not raw_shots:
        problems.append(f"{where}: no [[shots]]: add at least one with a prompt and a duration")
        raw_shots = []
    for n, raw in enumerate(raw_shots, 1):
        at = f"{where}: shots[{n}]"
        if not isinstance(raw, dict):
            problems.append(f"{at} must be a table")
            continue
        problems += [f"{at}: unknown key {k!r} (known: {', '.join(sorted(SHOT_KEYS))})"
                     for k in sorted(set(raw) - SHOT_KEYS)]
        prompt, duration = raw.get("prompt"), raw.get("duration")
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(f"{at}: prompt is required")
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
                or not 0 < duration <= 60:
            problems.append(f"{at}: duration must be seconds, more than 0 and at most 60")
        if not isinstance(raw.get("params", {}), dict):
            problems.append(f"{at}: params must be a table")
        shot_seed = raw.get("seed")
        if shot_seed is not None and (isinstance(shot_seed, bool) or not isinstance(shot_seed, int)):
            problems.append(f"{at}: seed must be a whole number")
        shots.append(Shot(str(prompt or ""), float(duration or 0),
                          image(raw.get("image"), f"shots[{n}].image"),
                          dict(raw.get("params") or {}), shot_seed))
    start = image(data.get("image"), "image")
    if problems:
        raise ChainError("; ".join(problems))
    return ShotList(name, endpoint, shots, data.get("lora"), float(data.get("scale", 1.0)),
                    data.get("fps"), data.get("resolution"), data.get("negative_prompt"),
                    None if seed == "random" else seed, bool(data.get("chain_last_frame", False)),
                    start, dict(data.get("params") or {}))


# ---- planning: what each shot sends, and what it costs --------------------------------------

@dataclass
class PlannedShot:
    index: int  # 0-based
    prompt: str
    seed: int
    params: dict[str, Any]  # without the start image (known when the shot runs)
    start: str  # "initial image", "shot N's last frame" or a file
    target_frames: int
    frames: int
    cost: float


@dataclass
class ChainPlan:
    spec: ShotList
    shots: list[PlannedShot]

    @property
    def cost(self) -> float:
        return round(sum(s.cost for s in self.shots), 6)


def plan(conn: sqlite3.Connection, spec: ShotList, *, seeds: dict[int, int] | None = None
         ) -> ChainPlan:
    """Every shot's parameters, validated by the endpoint and priced; nothing is sent."""
    endpoint = endpoints.get(spec.endpoint)
    if endpoint.media != "video":
        raise ChainError(f"{spec.endpoint} makes {endpoint.media}s: a chain needs a video "
                         "endpoint")
    takes_image = "image_url" in endpoint.params
    if not takes_image and (spec.chain_last_frame or spec.image):
        raise ChainError(f"{spec.endpoint} takes no start image: chain_last_frame and image "
                         "need an image-to-video endpoint")
    lora = loras.get(conn, spec.lora) if spec.lora else None
    fps = spec.fps or int(endpoint.defaults.get("frames_per_second", 16))
    shots = []
    for i, shot in enumerate(spec.shots):
        target, frames = frames_for(shot.duration, fps, endpoint)
        extra: dict[str, Any] = {**spec.params, **shot.params, "num_frames": frames,
                                 "frames_per_second": fps}
        if spec.resolution:
            extra["resolution"] = spec.resolution
        if spec.negative_prompt:
            extra["negative_prompt"] = spec.negative_prompt
        if shot.image:
            start = shot.image
        elif spec.chain_last_frame and i > 0:
            start = f"shot {i}'s last frame"
        elif spec.image:
            start = "initial image"
        else:
            start = ""
        if takes_image and not start:
            raise ChainError(f"shot {i + 1} has no start image: set image (the first shot's) "
                             "in the shot list")
        # the start image is known only when the shot runs: a stand-in lets the endpoint
        # check the rest, and is not kept
        stand_in = {"image_url": generations.LOCAL + "start.png"} if takes_image else {}
        if seeds and i in seeds:
            seed = seeds[i]
        elif shot.seed is not None:
            seed = shot.seed
        else:
            seed = spec.seed + i if spec.seed is not None else generations.new_seed()
        params = generations.build_params(endpoint, shot.prompt, lora, spec.scale, seed,
                                          {**extra, **stand_in})
        params.pop("image_url", None)
        shots.append(PlannedShot(i, shot.prompt, seed, params, start, target, frames,
                                 endpoint.price({**params, **stand_in})))
    return ChainPlan(spec, shots)


# ---- the store ------------------------------------------------------------------------------

@dataclass
class Chain:
    id: int
    name: str
    spec: ShotList
    planned: list[dict[str, Any]]  # PlannedShot as dicts
    folder: str
    status: str
    shots: list[int | None]  # the current generation of each shot
    error: str | None = None
    output_path: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    job_id: int | None = None
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row, root: Path) -> Chain:
        spec = json.loads(row["spec"])
        return cls(row["id"], row["name"], ShotList.from_dict(spec["shot_list"]),
                   spec["planned"], store.local_path(root, row["folder"]), row["status"],
                   json.loads(row["shots"]), row["error"],
                   store.local_path(root, row["output_path"]), json.loads(row["manifest"]),
                   row["job_id"], row["created_at"])

    @property
    def shot_count(self) -> int:
        return len(self.planned)


def create(conn: sqlite3.Connection, p: ChainPlan, folder: Path) -> int:
    """Record the chain and queue its job; each shot is submitted when its turn comes."""
    if find(conn, p.spec.name) is not None:
        raise ChainError(f"a chain named {p.spec.name!r} exists: `lorad chain show "
                         f"{p.spec.name}`, or give the shot list another name")
    now = time.time()
    spec = {"shot_list": asdict(p.spec), "planned": [asdict(s) for s in p.shots]}
    with transaction(conn):
        chain_id = store.table(conn, "chains").insert({
            "name": p.spec.name, "spec": json.dumps(spec), "folder": store.stored_path(conn, folder),
            "status": "queued", "shots": json.dumps([None] * len(p.shots)),
            "created_at": now, "updated_at": now}).last_pk
        _queue(conn, chain_id)
    return chain_id


def _queue(conn: sqlite3.Connection, chain_id: int) -> int:
    job_id = jobs.enqueue(conn, JOB_KIND, {"chain_id": chain_id}, max_attempts=10)
    update(conn, chain_id, status="queued", error=None, job_id=job_id)
    return job_id


def update(conn: sqlite3.Connection, chain_id: int, **values: Any) -> None:
    if "output_path" in values:
        values["output_path"] = store.stored_path(conn, values["output_path"])
    for key in ("shots", "manifest"):
        if key in values:
            values[key] = json.dumps(values[key])
    store.table(conn, "chains").update(chain_id, {**values, "updated_at": time.time()})


def find(conn: sqlite3.Connection, name: str) -> Chain | None:
    row = conn.execute("SELECT * FROM chains WHERE name = ?", (name,)).fetchone()
    return Chain.from_row(row, store.root_of(conn)) if row else None


def get(conn: sqlite3.Connection, name: str) -> Chain:
    chain = find(conn, name)
    if chain is None:
        known = [r[0] for r in conn.execute("SELECT name FROM chains ORDER BY id")]
        raise ChainError(f"no chain named {name!r}" + (f"; known: {', '.join(known)}"
                                                        if known else ""))
    return chain


def get_by_id(conn: sqlite3.Connection, chain_id: int) -> Chain:
    row = conn.execute("SELECT * FROM chains WHERE id = ?", (chain_id,)).fetchone()
    if row is None:
        raise ChainError(f"no chain with id {chain_id}")
    return Chain.from_row(row, store.root_of(conn))


def list_all(conn: sqlite3.Connection) -> list[Chain]:
    root = store.root_of(conn)
    return [Chain.from_row(r, root) for r in conn.execute("SELECT * FROM chains ORDER BY id")]


def set_shot(conn: sqlite3.Connection, chain_id: int, index: int, gen_id: int) -> None:
    """Make `gen_id` the current generation of shot `index` (read-modify-write in one
    transaction: a retake and the running job may both touch the list)."""
    with transaction(conn):
        shots = json.loads(conn.execute("SELECT shots FROM chains WHERE id = ?",
                                        (chain_id,)).fetchone()[0])
        shots[index] = gen_id
        update(conn, chain_id, shots=shots)


def start_shot(conn: sqlite3.Connection, chain: Chain, index: int, image: str | None) -> int:
    """Create and queue shot `index`'s generation, and make it the shot's, in one transaction:
    a daemon killed after this finds it and never submits the shot twice."""
    planned = chain.planned[index]
    params = dict(planned["params"])
    prompt, seed = params.pop("prompt"), params.pop("seed")
    params.pop("loras", None)
    with transaction(conn):
        gen_id = generations.create(
            conn, chain.spec.endpoint, prompt, lora=chain.spec.lora, scale=chain.spec.scale,
            seed=seed, extra=params, files={"image_url": image} if image else None,
            chain_id=chain.id, shot_index=index)
        set_shot(conn, chain.id, index, gen_id)
    return gen_id


def retake_plan(conn: sqlite3.Connection, name: str, shot: int, *, seed: int | None = None
                ) -> tuple[Chain, ChainPlan]:
    """What re-running shots `shot`..n (1-based) would send and cost: the shot a new seed
    (unless one is given), the shots after it their own seeds and a new start frame."""
    chain = get(conn, name)
    if not 1 <= shot <= chain.shot_count:
        raise ChainError(f"chain {name} has shots 1 to {chain.shot_count}, not {shot}")
    if chain.status in ("queued", "running"):
        raise ChainError(f"chain {name} is {chain.status}: wait for it, or `lorad chain cancel "
                         f"{name}`")
    used = generations.get(conn, chain.shots[shot - 1]).seed if chain.shots[shot - 1] else None
    seeds = {i: s["seed"] for i, s in enumerate(chain.planned)}
    seeds[shot - 1] = seed if seed is not None else generations.new_seed(avoid=used)
    full = plan(conn, chain.spec, seeds=seeds)
    return chain, ChainPlan(chain.spec, full.shots[shot - 1:])


def retake(conn: sqlite3.Connection, chain: Chain, p: ChainPlan) -> int:
    """Forget the current generations of the planned shots (they stay in the history) and run
    the chain again from the first of them."""
    first = p.shots[0].index
    with transaction(conn):
        planned = chain.planned[:first] + [asdict(s) for s in p.shots]
        spec = {"shot_list": asdict(chain.spec), "planned": planned}
        shots = chain.shots[:first] + [None] * (chain.shot_count - first)
        update(conn, chain.id, spec=json.dumps(spec), shots=shots, output_path=None)
        return _queue(conn, chain.id)


def cancel(conn: sqlite3.Connection, name: str) -> str:
    """Stop the chain: its job, and the shot on the service now (which is cancelled there)."""
    chain = get(conn, name)
    if chain.status not in ("queued", "running"):
        return f"chain {name} is {chain.status}; nothing to cancel"
    for gen_id in chain.shots:
        if gen_id is not None and generations.get(conn, gen_id).status not in (
                "completed", "failed", "cancelled"):
            generations.cancel(conn, gen_id)
    if chain.job_id is not None:
        jobs.request_cancel(conn, chain.job_id)
    update(conn, chain.id, status="cancelled", error="cancelled by you")
    return f"chain {name} cancelled"
