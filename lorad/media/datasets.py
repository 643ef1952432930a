"""Datasets: a named set of clips made for one model profile, with its caption rules."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from lorad.core import store
from lorad.core.config import Config
from lorad.core.errors import LoradError
from lorad.media import profiles

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class DatasetError(LoradError):
    pass


@dataclass
class Dataset:
    id: int
    name: str
    profile: str
    trigger: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Dataset:
        data = dict(row)
        data["settings"] = json.loads(data["settings"] or "{}")
        return cls(**data)


def create(conn: sqlite3.Connection, name: str, profile: str, *, trigger: str | None = None,
           config: Config | None = None) -> Dataset:
    if not NAME_RE.match(name):
        raise DatasetError(f"dataset name {name!r} must be letters, digits, '.', '_' or '-' "
                           "(it names folders), at most 64 characters")
    try:
        made_for = profiles.get(profile, config)
    except profiles.ProfileError as exc:
        raise DatasetError(str(exc)) from None
    if conn.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone():
        raise DatasetError(f"a dataset named {name!r} exists already")
    settings = {}
    if made_for.media == "audio":  # captions are tag prompts: short, linted by tag group
        settings["caption_rules"] = {"tag_prompt": True, "min_words": 3, "max_words": 80}
    store.table(conn, "datasets").insert({"name": name, "profile": profile, "trigger": trigger,
                                          "settings": json.dumps(settings),
                                          "created_at": time.time()})
    return get(conn, name)


def get(conn: sqlite3.Connection, name: str) -> Dataset:
    row = conn.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = [r[0] for r in conn.execute("SELECT name FROM datasets ORDER BY name")]
        hint = f"known: {', '.join(known)}" if known else "create one with `lorad dataset create`"
        raise DatasetError(f"no dataset named {name!r} ({hint})")
    return Dataset.from_row(row)


def get_by_id(conn: sqlite3.Connection, dataset_id: int) -> Dataset:
    row = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    if row is None:
        raise DatasetError(f"no dataset with id {dataset_id}")
    return Dataset.from_row(row)


def list_all(conn: sqlite3.Connection) -> list[Dataset]:
    return [Dataset.from_row(r) for r in conn.execute("SELECT * FROM datasets ORDER BY name")]


def update_settings(conn: sqlite3.Connection, dataset_id: int, **changes: Any) -> None:
    """Replace whole settings keys (read and written under one write lock)."""
    with store.transaction(conn):
        settings = {**get_by_id(conn, dataset_id).settings, **changes}
        store.table(conn, "datasets").update(dataset_id,
                                             {"settings": json.dumps(settings, sort_keys=True)})


RULE_KEYS = ("template", "min_words", "max_words", "negative_prompt", "trigger_position")


@dataclass
class RulesChange:
    """An edit of a dataset's rules; None / empty means "leave as is". Lists are added to (or,
    for `allow`, removed from) what is there, so two people adding at once both keep theirs."""

    rules: dict[str, Any] = field(default_factory=dict)  # RULE_KEYS -> new value
    ban: list[str] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)
    eval_prompts: list[str] = field(default_factory=list)
    clear_eval_prompts: bool = False
    checklist: list[str] = field(default_factory=list)
    clear_checklist: bool = False
    validation: float | None = None
    prompt_template: str | None = None
    trigger: str | None = None


def change_rules(conn: sqlite3.Connection, dataset_id: int, change: RulesChange) -> Dataset:
    """Apply `change` as one read-modify-write under the write lock: concurrent `dataset rules`
    calls each see the other's result instead of overwriting it."""
    unknown = set(change.rules) - set(RULE_KEYS)
    if unknown:
        raise DatasetError(f"unknown caption rule {sorted(unknown)[0]!r}; "
                           f"known: {', '.join(RULE_KEYS)}")
    with store.transaction(conn):
        settings = dict(get_by_id(conn, dataset_id).settings)
        rules = dict(settings.get("caption_rules", {}))
        rules.update({k: v for k, v in change.rules.items() if v is not None})
        if change.ban:
            rules["banned_words"] = sorted(set(rules.get("banned_words", [])) | set(change.ban))
        if change.allow:
            rules["banned_words"] = [w for w in rules.get("banned_words", [])
                                     if w not in change.allow]
        settings["caption_rules"] = rules
        prompts = [] if change.clear_eval_prompts else list(settings.get("eval_prompts", []))
        if change.clear_eval_prompts or change.eval_prompts:
            settings["eval_prompts"] = prompts + change.eval_prompts
        if change.validation is not None:
            settings["validation"] = change.validation
        if change.prompt_template is not None:
            settings["prompt_template"] = change.prompt_template
        if change.checklist or change.clear_checklist:
            kept = [] if change.clear_checklist else list(settings.get("checklist", []))
            settings["checklist"] = kept + [c for c in change.checklist if c not in kept]
        row: dict[str, Any] = {"settings": json.dumps(settings, sort_keys=True)}
        if change.trigger is not None:
            row["trigger"] = change.trigger
        store.table(conn, "datasets").update(dataset_id, row)
        return get_by_id(conn, dataset_id)


def set_trigger(conn: sqlite3.Connection, dataset_id: int, trigger: str | None) -> None:
    store.table(conn, "datasets").update(dataset_id, {"trigger": trigger})


def change_mark(conn: sqlite3.Connection) -> tuple:
    """Changes with any dataset's name, trigger or settings (rules, eval prompts)."""
    return tuple(conn.execute("SELECT COUNT(*), group_concat(id || name || IFNULL(trigger, '')"
                              " || settings, '|') FROM datasets").fetchone())
