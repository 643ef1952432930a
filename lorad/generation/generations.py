"""Generations: requests to a generation service with a LoRA at a scale, their retakes, and
sweeps (checkpoints x scales x prompts x seeds with fixed seeds, priced before submitting)."""

from __future__ import annotations

import itertools
import json
import re
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorad.core import jobs, ledger, logs, store
from lorad.core.errors import LoradError
from lorad.core.store import transaction
from lorad.generation import endpoints, loras

JOB_KIND = "gen.run"
DONE = ("completed", "failed", "cancelled")
IN_FLIGHT = ("queued", "submitting", "submitted", "in_progress")
# A submit whose answer was lost: the service may have accepted (and billed) it. lorad never
# sends it again by itself; the person resubmits or forgets it.
UNKNOWN = "unknown"
UNKNOWN_ADVICE = ("it was not sent again: check the service's dashboard, then `lorad gens "
                  "resubmit {id}` (or R on the Generations screen) to send it again, or `lorad "
                  "gens forget {id}`")
# flaws to tag generations with when rating; each dataset's `--checklist` adds its own
DEFAULT_CHECKLIST = ["spinning tires", "warped panels", "not static", "not phone look",
                     "wrong aspect"]


class GenerationError(LoradError):
    pass


@dataclass
class Generation:
    id: int
    endpoint: str
    params: dict[str, Any]
    status: str
    lora_id: int | None = None
    checkpoint_id: int | None = None
    scale: float | None = None
    seed: int | None = None
    sweep_id: str | None = None
    parent_id: int | None = None
    request_id: str | None = None  # the service's id for the request
    handle: dict[str, Any] = field(default_factory=dict)  # what the service needs to follow it
    output_path: str | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    inference_time: float | None = None
    cost: float | None = None
    error: str | None = None
    prompt: str | None = None
    job_id: int | None = None
    created_at: float = 0.0
    dataset_id: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # param -> {path, sha256, url}
    service: str = "fal"
    chain_id: int | None = None
    shot_index: int | None = None  # 0-based, in its chain
    manifest: dict[str, Any] = field(default_factory=dict)  # how it was made (see manifests)
    check_settings: dict[str, Any] = field(default_factory=dict)  # check_profile, min_frame_diff
    clip_id: int | None = None  # a caption draft's clip (lorad.generation.drafting)
    draft: dict[str, Any] = field(default_factory=dict)  # how its caption is written
    metrics: dict[str, float] = field(default_factory=dict)  # scores its command printed

    @classmethod
    def from_row(cls, row: sqlite3.Row, root: Path) -> Generation:
        """`root`: the workspace the row's relative paths are in (store.root_of)."""
        d = dict(row)
        inputs = json.loads(d["inputs"] or "{}")
        for item in inputs.values():
            if isinstance(item, dict) and item.get("path"):
                item["path"] = store.local_path(root, item["path"])
        return cls(d["id"], d["endpoint"], json.loads(d["params"] or "{}"), d["status"],
                   d["lora_id"], d["checkpoint_id"], d["scale"], d["seed"], d["sweep_id"],
                   d["parent_id"], d["request_id"], json.loads(d["handle"] or "{}"),
                   store.local_path(root, d["output_path"]), json.loads(d["checks"] or "{}"),
                   d["inference_time"],
                   d["cost"], d["error"], d["prompt"], d["job_id"], d["created_at"],
                   d["dataset_id"], inputs, d["service"], d["chain_id"], d["shot_index"],
                   json.loads(d["manifest"] or "{}"), json.loads(d["check_settings"] or "{}"),
                   d.get("clip_id"), json.loads(d.get("draft") or "{}"),
                   json.loads(d.get("metrics") or "{}"))


_SLOT = re.compile(r"\[([A-Za-z][\w ]*?)(\?)?\]")


def fill_template(template: str, values: dict[str, str]) -> str:
    """`TRK, [color] [year?] [make] parked [setting]` with values for the slots; an optional
    slot (`?`) without a value disappears, a required one is an error naming what is missing."""
    missing = [m.group(1) for m in _SLOT.finditer(template)
               if not m.group(2) and m.group(1) not in values]
    if missing:
        raise GenerationError(f"the prompt template needs {', '.join(missing)}: add "
                              + " ".join(f'--fill "{name}=..."' for name in missing))
    unknown = set(values) - {m.group(1) for m in _SLOT.finditer(template)}
    if unknown:
        raise GenerationError(f"the prompt template has no slot {', '.join(sorted(unknown))} "
                              f"(it is: {template})")
    text = _SLOT.sub(lambda m: values.get(m.group(1), ""), template)
    text = re.sub(r",(\s*,)+", ",", text)  # an empty optional slot between commas
    return re.sub(r"\s+([,.])", r"\1", re.sub(r" {2,}", " ", text)).strip(" ,")


@dataclass
class DatasetDefaults:
    """What a dataset's reference card says every generation of it should use."""

    dataset_id: int | None = None
    negative_prompt: str | None = None
    eval_prompts: list[str] = field(default_factory=list)
    prompt_template: str | None = None  # its own, else the caption template

    def apply(self, endpoint: endpoints.Endpoint, extra: dict[str, Any] | None) -> dict[str, Any]:
        extra = dict(extra or {})
        if self.negative_prompt and "negative_prompt" in endpoint.params:
            extra.setdefault("negative_prompt", self.negative_prompt)
        return extra


def dataset_defaults(conn: sqlite3.Connection, name: str | None) -> DatasetDefaults:
    if not name:
        return DatasetDefaults()
    from lorad.media import datasets

    d = datasets.get(conn, name)
    rules = d.settings.get("caption_rules", {})
    template = d.settings.get("prompt_template") or rules.get("template")
    if template and d.trigger and d.trigger not in template:
        template = f"{d.trigger}, {template}"
    return DatasetDefaults(d.id, rules.get("negative_prompt"),
                           list(d.settings.get("eval_prompts", [])), template)


LOCAL = "file://"  # a parameter value naming a local file the job uploads before submitting
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def local_files(files: dict[str, str | Path] | None) -> dict[str, str]:
    """`--image PATH` and the like: checked now, uploaded by the job, sent as fal URLs."""
    out = {}
    for name, path in (files or {}).items():
        p = Path(path).expanduser().resolve()
        if not p.is_file():
            raise GenerationError(f"{path}: no such file")
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise GenerationError(f"{path}: use a {'/'.join(IMAGE_SUFFIXES)} image")
        out[name] = LOCAL + str(p)
    return out


# Parameters a generation records in columns of its own: set only through them, so what lorad
# stores is what it sent.
CORE_PARAMS = {"prompt": "give the prompt as PROMPT (or --fill)", "seed": "use --seed",
               "loras": "use --lora and --scale"}


def build_params(endpoint: endpoints.Endpoint, prompt: str, lora: loras.Lora | None,
                 scale: float, seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    core = sorted(set(extra or {}) & set(CORE_PARAMS))
    if core:
        raise GenerationError("; ".join(f"--param {name}: {CORE_PARAMS[name]}" for name in core))
    params: dict[str, Any] = {"prompt": prompt, "seed": seed, **(extra or {})}
    if lora is not None:
        weight: dict[str, Any] = {"path": lora.url, "scale": scale}
        if endpoint.lora_transformer:
            weight["transformer"] = lora.expert or "both"  # always explicit (default unverified)
        params["loras"] = [weight]
    problems = endpoint.validate(params)
    if problems:
        raise GenerationError("; ".join(problems))
    return params


def create(conn: sqlite3.Connection, endpoint_id: str, prompt: str, *, lora: str | None = None,
           scale: float = 1.0, seed: int, extra: dict[str, Any] | None = None,
           sweep_id: str | None = None, parent_id: int | None = None,
           submit: bool = True, dataset: str | None = None,
           files: dict[str, str | Path] | None = None, chain_id: int | None = None,
           shot_index: int | None = None, checks: dict[str, Any] | None = None,
           checkpoint_id: int | None = None) -> int:
    """A generation; with `dataset`, its default negative prompt applies unless given.
    `files` maps parameters to local images (image-to-video's `image_url`). `checkpoint_id`:
    the checkpoint a request runs without a LoRA URL (a command on a pod loads the file)."""
    endpoint = endpoints.get(endpoint_id)
    if endpoint.media == "text":
        raise GenerationError(f"{endpoint_id} writes captions: `lorad captions draft DATASET` "
                              "sends clips to it")
    lo = loras.get(conn, lora) if lora else None
    defaults = dataset_defaults(conn, dataset)
    extra = {**defaults.apply(endpoint, extra), **local_files(files)}
    params = build_params(endpoint, prompt, lo, scale, seed, extra)
    gen_id = _insert(conn, parent_id=parent_id, sweep_id=sweep_id,
                     lora_id=lo.id if lo else None,
                     checkpoint_id=lo.checkpoint_id if lo else checkpoint_id,
                     endpoint=endpoint_id,
                     params=params, scale=scale if lo else None, seed=seed, prompt=prompt,
                     cost=endpoint.price(params), dataset_id=defaults.dataset_id,
                     chain_id=chain_id, shot_index=shot_index, check_settings=checks or {})
    if submit:
        queue(conn, gen_id)
    return gen_id


def record_sample(conn: sqlite3.Connection, *, checkpoint_id: int, path: str | Path,
                  prompt: str | None) -> int:
    """What a trainer made by itself at a checkpoint's step (ACE-Step's eval audio) as a
    completed generation of that checkpoint: played, rated and ranked like any, never sent
    and never retaken."""
    gen_id = _insert(conn, endpoint=endpoints.TRAINER_SAMPLE, params={"prompt": prompt or ""},
                     prompt=prompt, checkpoint_id=checkpoint_id, cost=0.0)
    set_status(conn, gen_id, "completed", output_path=str(path), finished_at=time.time(),
               checks=json.dumps({"ok": True, "usable": True, "sample": True}))
    return gen_id


def create_draft_request(conn: sqlite3.Connection, endpoint_id: str, params: dict[str, Any], *,
                         clip_id: int, dataset_id: int, draft: dict[str, Any]) -> int:
    """A caption draft's request for one clip (lorad.generation.drafting), queued."""
    endpoint = endpoints.get(endpoint_id)
    problems = endpoint.validate(params)
    if problems:
        raise GenerationError("; ".join(problems))
    gen_id = _insert(conn, endpoint=endpoint_id, params=params, prompt=params.get("prompt"),
                     cost=endpoint.price(params), dataset_id=dataset_id, clip_id=clip_id,
                     draft=draft)
    queue(conn, gen_id)
    return gen_id


def _insert(conn: sqlite3.Connection, **cols: Any) -> int:
    """A new draft generation on its endpoint's service; dicts are stored as JSON."""
    cols = {k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
            for k, v in cols.items()}
    now = time.time()
    cols.update(status="draft", created_at=now, updated_at=now,
                service=endpoints.get(cols["endpoint"]).service)
    return store.table(conn, "generations").insert(cols).last_pk


def set_status(conn: sqlite3.Connection, gen_id: int, status: str, **fields: Any) -> None:
    """A status change, with any other columns; an error text is redacted of secrets."""
    if fields.get("error"):
        fields["error"] = logs.redact(str(fields["error"]))
    if "output_path" in fields:
        fields["output_path"] = store.stored_path(conn, fields["output_path"])
    store.table(conn, "generations").update(
        gen_id, {"status": status, "updated_at": time.time(), **fields})


def set_inputs(conn: sqlite3.Connection, gen_id: int, params: dict[str, Any],
               inputs: dict[str, Any]) -> None:
    """The parameters as sent (local files replaced by their uploaded URLs) and which file
    each upload was."""
    inputs = {name: {**item, "path": store.stored_path(conn, item["path"])}
              if isinstance(item, dict) and item.get("path") else item
              for name, item in inputs.items()}
    store.table(conn, "generations").update(gen_id, {
        "params": json.dumps(params, sort_keys=True), "inputs": json.dumps(inputs),
        "updated_at": time.time()})


def mark_submitting(conn: sqlite3.Connection, gen_id: int) -> None:
    """The intent, written before the request goes out: an attempt that finds it without a
    request id knows the request may have been sent."""
    set_status(conn, gen_id, "submitting", submitted_at=time.time())


def mark_unknown(conn: sqlite3.Connection, gen_id: int, why: str) -> None:
    set_status(conn, gen_id, UNKNOWN, finished_at=time.time(),
               error=f"{why}; {UNKNOWN_ADVICE.format(id=gen_id)}")


def resubmit(conn: sqlite3.Connection, gen_id: int) -> int:
    """Send again a generation whose submit outcome is unknown, because the person says so."""
    g = get(conn, gen_id)
    if g.status != UNKNOWN:
        raise GenerationError(f"generation {g.id} is {g.status}: only one whose submit outcome "
                              "is unknown is resubmitted (a finished one is retaken: r)")
    set_status(conn, g.id, "draft", request_id=None, handle="{}", error=None, finished_at=None)
    return queue(conn, g.id)


def forget(conn: sqlite3.Connection, gen_id: int) -> None:
    """Give up a generation whose submit outcome is unknown without sending it again."""
    g = get(conn, gen_id)
    if g.status != UNKNOWN:
        raise GenerationError(f"generation {g.id} is {g.status}: only one whose submit outcome "
                              "is unknown can be forgotten")
    set_status(conn, g.id, "failed", finished_at=time.time(),
               error="not sent again, by your choice (it may have run on the service)")


def unknown_outcomes(conn: sqlite3.Connection) -> int:
    """How many submits ever ended with their answer lost (from the status history)."""
    return conn.execute("SELECT COUNT(*) FROM generation_events WHERE status = ?",
                        (UNKNOWN,)).fetchone()[0]


def queue(conn: sqlite3.Connection, gen_id: int) -> int:
    job_id = jobs.enqueue(conn, JOB_KIND, {"generation_id": gen_id}, max_attempts=20)
    set_status(conn, gen_id, "queued", job_id=job_id)
    return job_id


def get(conn: sqlite3.Connection, gen_id: int) -> Generation:
    row = conn.execute("SELECT * FROM generations WHERE id = ?", (gen_id,)).fetchone()
    if row is None:
        raise GenerationError(f"no generation with id {gen_id}")
    return Generation.from_row(row, store.root_of(conn))


def cancel(conn: sqlite3.Connection, gen_id: int) -> str:
    """Cancel a queued generation at once; ask the daemon to cancel one in flight (on fal too).
    Returns 'cancelled' or 'cancelling'."""
    g = get(conn, gen_id)
    if g.status in DONE or g.job_id is None:
        raise GenerationError(f"generation {g.id} is {g.status}: nothing to cancel")
    if g.request_id and jobs.get(conn, g.job_id).state == "queued":
        # fal has the request (the job was handed back by a stopped daemon, or waits for a
        # retry): the job must cancel it there, so it runs now, cancelled from the start
        jobs.run_cancelled(conn, g.job_id)
        return "cancelling"
    outcome = jobs.request_cancel(conn, g.job_id)
    if outcome == "cancelled":
        set_status(conn, g.id, "cancelled", finished_at=time.time())
    return outcome


def cancel_job(conn: sqlite3.Connection, job_id: int) -> str:
    """Cancel any job (`lorad jobs cancel`, the Jobs screen); a generation's goes through
    :func:`cancel`, so a request already on fal is cancelled there too."""
    job = jobs.get(conn, job_id)
    gen_id = job.payload.get("generation_id") if job.kind == JOB_KIND else None
    if gen_id is not None and job.state == "queued":
        return cancel(conn, gen_id)
    return jobs.request_cancel(conn, job_id)


def list_all(conn: sqlite3.Connection, *, sweep_id: str | None = None,
             drafts: bool = False) -> list[Generation]:
    """Generations to look at and rate; with `drafts`, the caption drafts' requests too."""
    sql, args = "SELECT * FROM generations WHERE 1", []
    if not drafts:
        sql += " AND clip_id IS NULL"
    if sweep_id:
        sql += " AND sweep_id = ?"
        args.append(sweep_id)
    root = store.root_of(conn)
    return [Generation.from_row(r, root) for r in conn.execute(sql + " ORDER BY id", args)]


def new_seed(avoid: int | None = None) -> int:
    while True:
        seed = secrets.randbelow(2**31)
        if seed != avoid:
            return seed


def retake(conn: sqlite3.Connection, gen_id: int, *, seed: int | None = None,
           scale: float | None = None, prompt: str | None = None) -> int:
    """Same parameters, a new seed (or a changed scale or prompt), linked to the original."""
    g = get(conn, gen_id)
    if g.endpoint == endpoints.TRAINER_SAMPLE:
        raise GenerationError(f"generation {gen_id} is what the trainer made at that step: it "
                              "cannot be made again; generate with the checkpoint instead")
    params = dict(g.params)
    if prompt is not None:
        if not prompt.strip():
            raise GenerationError("the prompt is empty")
        params["prompt"] = prompt.strip()
    # a new seed every time (a seed derived from the original's made two retakes identical,
    # paid twice); the same one only when asked
    params["seed"] = seed if seed is not None else new_seed(avoid=g.seed)
    if scale is not None:
        for weight in params.get("loras", []):
            weight["scale"] = scale
    problems = endpoints.get(g.endpoint).validate(params)
    if problems:
        raise GenerationError("; ".join(problems))
    gen_id = _insert(conn, parent_id=g.id, sweep_id=g.sweep_id, lora_id=g.lora_id,
                     checkpoint_id=g.checkpoint_id, endpoint=g.endpoint, params=params,
                     scale=scale if scale is not None else g.scale, seed=params["seed"],
                     prompt=params.get("prompt", g.prompt),
                     cost=endpoints.get(g.endpoint).price(params),
                     dataset_id=g.dataset_id, inputs=g.inputs)
    queue(conn, gen_id)
    return gen_id


@dataclass
class SweepPlan:
    sweep_id: str
    endpoint_id: str
    cells: list[dict[str, Any]]
    cost: float
    dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # resolved: defaults, local files
    checks: dict[str, Any] = field(default_factory=dict)  # output check settings asked for


def plan_sweep(conn: sqlite3.Connection, endpoint_id: str, *, lora_names: list[str | None],
               scales: list[float], prompts: list[str], seeds: list[int],
               extra: dict[str, Any] | None = None, dataset: str | None = None,
               files: dict[str, str | Path] | None = None,
               checks: dict[str, Any] | None = None) -> SweepPlan:
    """The grid, validated and priced; nothing is submitted. With `dataset`, no prompts means
    its eval prompts, and its negative prompt applies unless given."""
    endpoint = endpoints.get(endpoint_id)
    defaults = dataset_defaults(conn, dataset)
    prompts = prompts or defaults.eval_prompts
    if not prompts:
        raise GenerationError("no prompts: give --prompt, or add eval prompts to the dataset "
                              "(`lorad dataset rules NAME --eval-prompt ...`)")
    extra = {**defaults.apply(endpoint, extra), **local_files(files)}
    cells = []
    for name, scale, prompt, seed in itertools.product(lora_names, scales, prompts, seeds):
        lora = loras.get(conn, name) if name else None  # None: the base model alone
        params = build_params(endpoint, prompt, lora, scale, seed, extra)
        cells.append({"lora": name, "scale": scale, "prompt": prompt, "seed": seed,
                      "cost": endpoint.price(params)})
    return SweepPlan(uuid.uuid4().hex[:10], endpoint_id, cells,
                     round(sum(c["cost"] for c in cells), 6), dataset, extra, checks or {})


def plan_checkpoint_sweep(conn: sqlite3.Connection, endpoint_id: str, *,
                          checkpoints: list[tuple[str, int, dict[str, Any]]], prompts: list[str],
                          seeds: list[int], dataset: str | None = None,
                          checks: dict[str, Any] | None = None) -> SweepPlan:
    """Checkpoints x prompts x seeds on an endpoint that loads a checkpoint file (a command on
    a pod): each checkpoint is (its name, its id, the request's parameters besides prompt and
    seed). Validated and priced; nothing is submitted."""
    endpoint = endpoints.get(endpoint_id)
    prompts = prompts or dataset_defaults(conn, dataset).eval_prompts
    if not prompts:
        raise GenerationError("no prompts: give --prompt, or --dataset with eval prompts")
    cells = []
    for (name, checkpoint_id, extra), prompt, seed in itertools.product(checkpoints, prompts,
                                                                        seeds):
        params = build_params(endpoint, prompt, None, 1.0, seed, extra)
        cells.append({"lora": None, "checkpoint": name, "checkpoint_id": checkpoint_id,
                      "extra": extra, "scale": None, "prompt": prompt, "seed": seed,
                      "cost": endpoint.price(params)})
    return SweepPlan(uuid.uuid4().hex[:10], endpoint_id, cells,
                     round(sum(c["cost"] for c in cells), 6), dataset, {}, checks or {})


def submit_sweep(conn: sqlite3.Connection, plan: SweepPlan, *, budget: float | None
                 ) -> list[int]:
    """Create and queue the planned generations, exactly as planned and priced."""
    if budget is not None and plan.cost > budget:
        raise GenerationError(f"this sweep costs about ${plan.cost:.2f} ({len(plan.cells)} "
                              f"generations), over the ${budget:.2f} budget: fewer scales, "
                              "prompts or seeds, or raise --budget")
    ids = []
    with transaction(conn):
        for c in plan.cells:
            ids.append(create(conn, plan.endpoint_id, c["prompt"], lora=c["lora"],
                              scale=c["scale"] if c["scale"] is not None else 1.0,
                              seed=c["seed"], extra=c.get("extra", plan.extra),
                              sweep_id=plan.sweep_id, dataset=plan.dataset,
                              checks=plan.checks, checkpoint_id=c.get("checkpoint_id")))
    return ids


def sweep_counts(conn: sqlite3.Connection, sweep_id: str) -> dict[str, int]:
    """How a sweep stands: completed, failed (cancelled and unknown too), pending, and how
    many completed ones the checks flagged."""
    counts = {"completed": 0, "failed": 0, "pending": 0, "flagged": 0}
    for status, checks in conn.execute("SELECT status, checks FROM generations WHERE sweep_id"
                                       " = ?", (sweep_id,)):
        if status == "completed":
            counts["completed"] += 1
            counts["flagged"] += not json.loads(checks or "{}").get("ok", True)
        elif status in ("failed", "cancelled", UNKNOWN):
            counts["failed"] += 1
        else:
            counts["pending"] += 1
    return counts


def events(conn: sqlite3.Connection, gen_id: int) -> list[dict[str, Any]]:
    """A generation's status history (written by triggers, migration 006)."""
    return [dict(r) for r in conn.execute(
        "SELECT status, detail, at FROM generation_events WHERE generation_id = ? ORDER BY id",
        (gen_id,))]


def uploaded_url(conn: sqlite3.Connection, sha256: str, service: str = "fal") -> str | None:
    """Where a local input file with this content was uploaded to `service` for an earlier
    generation (a sweep's start image goes up once)."""
    for (inputs,) in conn.execute("SELECT inputs FROM generations WHERE inputs LIKE ? AND"
                                  " service = ?", (f"%{sha256}%", service)):
        for item in json.loads(inputs).values():
            if item.get("sha256") == sha256 and item.get("url"):
                return item["url"]
    return None


def completed_for(conn: sqlite3.Connection, checkpoint_id: int) -> list[Generation]:
    """The checkpoint's generations that have an output."""
    root = store.root_of(conn)
    return [Generation.from_row(r, root) for r in conn.execute(
        "SELECT * FROM generations WHERE checkpoint_id = ? AND status = 'completed' ORDER BY id",
        (checkpoint_id,))]


def drafts_pending(conn: sqlite3.Connection, dataset_id: int) -> set[int]:
    """The clips of a dataset with a caption draft request not ended yet (queued or out)."""
    marks = ",".join("?" * len(DONE))
    return {r[0] for r in conn.execute(
        f"SELECT clip_id FROM generations WHERE clip_id IS NOT NULL AND dataset_id = ? AND"
        f" status NOT IN ({marks}, 'unknown')", (dataset_id, *DONE))}


def last_endpoint(conn: sqlite3.Connection) -> str | None:
    """The endpoint of the newest generation (a form's default)."""
    row = conn.execute("SELECT endpoint FROM generations ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


def in_flight(conn: sqlite3.Connection) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM generations WHERE status IN"
                        f" ({','.join('?' * len(IN_FLIGHT))})", IN_FLIGHT).fetchone()[0]


def checklist(conn: sqlite3.Connection) -> list[str]:
    """The tags offered when rating: the defaults, then the checklists of the datasets that
    have generations (or of the first dataset)."""
    from lorad.media import datasets

    used = {r[0] for r in conn.execute("SELECT DISTINCT dataset_id FROM generations")}
    tags = list(DEFAULT_CHECKLIST)
    for n, d in enumerate(sorted(datasets.list_all(conn), key=lambda d: d.id)):
        if d.id in used or n == 0:
            tags += [t for t in d.settings.get("checklist", []) if t not in tags]
    return tags


def spent(conn: sqlite3.Connection) -> float:
    return ledger.spent(conn, ledger.GENERATION)


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes when any generation is added or changes (every write sets updated_at)."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(updated_at) FROM generations").fetchone())
