"""Ratings of generations (append-only: a new rating supersedes, nothing is overwritten) and
the ranking of checkpoints they give, with an interval that accounts for few votes."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field

from lorad.core import store
from lorad.core.errors import LoradError

VERDICTS = ("approve", "needs_review", "retake", "reject")


class RatingError(LoradError):
    pass


@dataclass(frozen=True)
class Rating:
    generation_id: int
    stars: int | None
    verdict: str | None
    tags: tuple[str, ...]
    note: str | None
    created_at: float


def rate(conn: sqlite3.Connection, generation_id: int, *, stars: int | None = None,
         verdict: str | None = None, tags: list[str] | None = None, note: str | None = None,
         keep: bool = True) -> Rating:
    """Record a rating. With keep, fields not given carry over from the current rating, so
    pressing 4 then `a` gives 4 stars and approve."""
    if stars is not None and not 1 <= stars <= 5:
        raise RatingError("stars are 1 to 5")
    if verdict is not None and verdict not in VERDICTS:
        raise RatingError(f"verdict is one of {', '.join(VERDICTS)}")
    if not conn.execute("SELECT 1 FROM generations WHERE id = ?", (generation_id,)).fetchone():
        raise RatingError(f"no generation with id {generation_id}")
    now_rating = current(conn, generation_id) if keep else None
    if now_rating:
        stars = now_rating.stars if stars is None else stars
        verdict = now_rating.verdict if verdict is None else verdict
        tags = list(now_rating.tags) if tags is None else tags
        note = now_rating.note if note is None else note
    r = Rating(generation_id, stars, verdict, tuple(sorted(set(tags or []))), note, time.time())
    store.table(conn, "ratings").insert({
        "generation_id": generation_id, "stars": r.stars, "verdict": r.verdict,
        "tags": json.dumps(r.tags), "note": r.note, "created_at": r.created_at})
    return r


def toggle_tag(conn: sqlite3.Connection, generation_id: int, tag: str) -> Rating:
    now = current(conn, generation_id)
    tags = set(now.tags if now else ())
    tags.symmetric_difference_update({tag})
    return rate(conn, generation_id, tags=sorted(tags))


def current(conn: sqlite3.Connection, generation_id: int) -> Rating | None:
    row = conn.execute("SELECT * FROM ratings WHERE generation_id = ? ORDER BY id DESC LIMIT 1",
                       (generation_id,)).fetchone()
    return _from_row(row) if row else None


def history(conn: sqlite3.Connection, generation_id: int) -> list[Rating]:
    return [_from_row(r) for r in conn.execute(
        "SELECT * FROM ratings WHERE generation_id = ? ORDER BY id", (generation_id,))]


def _from_row(row) -> Rating:
    return Rating(row["generation_id"], row["stars"], row["verdict"],
                  tuple(json.loads(row["tags"] or "[]")), row["note"], row["created_at"])


def wilson_lower(positive: int, n: int, z: float = 1.96) -> float:
    """Lower bound of the 95% Wilson interval of a share: 3 of 3 ranks below 40 of 45."""
    if n == 0:
        return 0.0
    p = positive / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


@dataclass(frozen=True)
class Rank:
    id: int  # the checkpoint's (rank_checkpoints) or the LoRA's (rank_loras)
    name: str
    rated: int
    good: int
    mean_stars: float | None
    score: float  # Wilson lower bound of the share of good generations
    metrics: dict[str, float] = field(default_factory=dict)  # the mean of each score printed


def is_good(r: Rating) -> bool:
    """A good outcome for the checkpoint: approved, or 4-5 stars with no verdict. Any other
    rating is a bad one (a reject or a retake whatever its stars, needs review, 1-3 stars)."""
    return r.verdict == "approve" or (r.verdict is None and (r.stars or 0) >= 4)


def rank_checkpoints(conn: sqlite3.Connection, run_id: int | None = None, *,
                     by: str | None = None) -> list[Rank]:
    """Checkpoints ordered by the lower bound of their good-generation share (current ratings
    only), ties by mean stars. Only generations that completed count: a service error says
    nothing of the LoRA. `by`: a metric their generations printed instead (`NAME`: higher is
    better, `-NAME`: lower is better); those without it come last."""
    sql = ("SELECT g.id, g.checkpoint_id, c.name, g.metrics FROM generations g JOIN checkpoints"
           " c ON c.id = g.checkpoint_id WHERE g.status = 'completed'")
    args: list = []
    if run_id is not None:
        sql += " AND c.run_id = ?"
        args.append(run_id)
    return by_metric(_rank(conn, conn.execute(sql, args).fetchall()), by)


def by_metric(ranked: list[Rank], by: str | None) -> list[Rank]:
    if not by:
        return ranked
    name = by.removeprefix("-")
    lower_better = by.startswith("-")
    have = [r for r in ranked if name in r.metrics]
    have.sort(key=lambda r: r.metrics[name], reverse=not lower_better)
    return have + [r for r in ranked if name not in r.metrics]


def rank_loras(conn: sqlite3.Connection) -> list[Rank]:
    """LoRAs lorad did not train (added by URL), ranked the same way."""
    return _rank(conn, conn.execute(
        "SELECT g.id, l.id, l.name, g.metrics FROM generations g JOIN loras l ON l.id = g.lora_id"
        " WHERE l.checkpoint_id IS NULL AND g.status = 'completed'").fetchall())


def _rank(conn: sqlite3.Connection, rows: list) -> list[Rank]:
    per: dict[int, list[Rating]] = {}
    names: dict[int, str] = {}
    scores: dict[int, dict[str, list[float]]] = {}
    for gen_id, key, name, metrics in rows:
        names[key] = name
        for metric, value in json.loads(metrics or "{}").items():
            scores.setdefault(key, {}).setdefault(metric, []).append(float(value))
        r = current(conn, gen_id)
        per.setdefault(key, [])
        if r is not None and (r.stars is not None or r.verdict is not None):
            per[key].append(r)
    out = []
    for key, rs in per.items():
        stars = [r.stars for r in rs if r.stars is not None]
        good = sum(is_good(r) for r in rs)
        means = {m: sum(v) / len(v) for m, v in scores.get(key, {}).items()}
        out.append(Rank(key, names[key], len(rs), good,
                        sum(stars) / len(stars) if stars else None, wilson_lower(good, len(rs)),
                        means))
    return sorted(out, key=lambda k: (k.score, k.mean_stars or 0), reverse=True)


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes with every rating (ratings are only ever added)."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(id) FROM ratings").fetchone())
