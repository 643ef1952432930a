"""The LoRA registry: every LoRA lorad knows, trained here (with lineage) or added by URL."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field

from lorad.core import store
from lorad.core.errors import LoradError
from lorad.media.datasets import NAME_RE


class LoraError(LoradError):
    pass


@dataclass
class Lora:
    id: int
    name: str
    checkpoint_id: int | None
    url: str | None
    repo: str | None
    trigger: str | None
    base_model: str | None
    expert: str | None
    created_at: float
    files: dict[str, str] = field(default_factory=dict)
    dataset_version_id: int | None = None
    private: bool = False  # in a private Hub repo: fal probably cannot download it

    @property
    def warning(self) -> str | None:
        if self.private:
            return (f"{self.name} is in a private Hub repo ({self.repo}); fal probably cannot "
                    "download it (unverified). If its generations fail to load the LoRA, "
                    "publish it to a public repo.")
        return None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Lora:
        data = dict(row)
        data["files"] = json.loads(data["files"] or "{}")
        data["private"] = bool(data.get("private"))
        return cls(**data)


def add(conn: sqlite3.Connection, name: str, url: str, *, trigger: str | None = None,
        base_model: str | None = None, expert: str | None = None, repo: str | None = None,
        checkpoint_id: int | None = None, files: dict[str, str] | None = None,
        dataset_version_id: int | None = None, private: bool = False,
        replace: bool = False) -> Lora:
    """Register a LoRA; `replace` overwrites one of that name (published again: everything
    about it is what was published now)."""
    if not NAME_RE.match(name) or ".." in name:
        raise LoraError(f"LoRA name {name!r}: letters, digits, '.', '_' or '-', at most 64 "
                        "characters (it names files and shows in tables)")
    if expert not in (None, "high", "low", "both"):
        raise LoraError("expert is high, low or both (Wan 2.2)")
    if not url.startswith(("https://", "http://")):
        raise LoraError(f"{url!r}: a LoRA URL must be http(s) (services download it)")
    cols = {"checkpoint_id": checkpoint_id, "url": url, "repo": repo, "trigger": trigger,
            "base_model": base_model, "expert": expert, "files": json.dumps(files or {}),
            "dataset_version_id": dataset_version_id, "private": int(private)}
    known = find(conn, name)
    table = store.table(conn, "loras")
    if known is not None:
        if not replace:
            raise LoraError(f"a LoRA named {name!r} exists already")
        table.update(known.id, cols)
    else:
        table.insert({**cols, "name": name, "created_at": time.time()})
    return get(conn, name)


def find(conn: sqlite3.Connection, name: str) -> Lora | None:
    row = conn.execute("SELECT * FROM loras WHERE name = ?", (name,)).fetchone()
    return Lora.from_row(row) if row else None


def get(conn: sqlite3.Connection, name: str) -> Lora:
    row = conn.execute("SELECT * FROM loras WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise LoraError(f"no LoRA named {name!r}; `lorad lora list` shows them")
    return Lora.from_row(row)


def get_by_id(conn: sqlite3.Connection, lora_id: int) -> Lora:
    row = conn.execute("SELECT * FROM loras WHERE id = ?", (lora_id,)).fetchone()
    if row is None:
        raise LoraError(f"no LoRA with id {lora_id}")
    return Lora.from_row(row)


def list_all(conn: sqlite3.Connection) -> list[Lora]:
    return [Lora.from_row(r) for r in conn.execute("SELECT * FROM loras ORDER BY id")]


def names(conn: sqlite3.Connection) -> dict[int, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT id, name FROM loras")}


def last_repo(conn: sqlite3.Connection, checkpoint_ids: list[int]) -> str | None:
    """The Hub repo any of these checkpoints was last published to."""
    if not checkpoint_ids:
        return None
    row = conn.execute(
        f"SELECT repo FROM loras WHERE checkpoint_id IN ({','.join('?' * len(checkpoint_ids))})"
        " AND repo IS NOT NULL ORDER BY id DESC LIMIT 1", checkpoint_ids).fetchone()
    return row[0] if row else None


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes when a LoRA is registered, changed or removed."""
    return tuple(conn.execute("SELECT COUNT(*), MAX(id), TOTAL(private) FROM loras").fetchone())
