"""A dataset's forms: create one (name, model profile, trigger) and set its rules (what
captions must hold, the eval prompts, the share held out for validation)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, Select, TextArea

from lorad.media import datasets, profiles

from .base import DatasetForm, FormError, FormScreen, chosen, labelled, number, words


def profile_line(p: profiles.Profile) -> str:
    if p.media != "video":
        return f"{p.media}: {p.description}".strip(": ")
    frames = f"{p.frames} frames" if p.frames else f"{p.min_frames}-{p.max_frames} frames"
    note = "" if p.trainable else " (no trainer here trains it: inference only)"
    return f"{p.width}x{p.height}, {p.fps:g} fps, {frames}, {p.format} format{note}"


class NewDatasetForm(FormScreen):
    TITLE = "New dataset"
    HINT = "A dataset holds clips prepared for one model profile; its name names folders."
    SUBMIT = "create"

    def fields(self) -> ComposeResult:
        yield from labelled("name (letters, digits, . _ -)", Input(id="dataset-name"))
        yield from labelled("model profile", Select([], id="dataset-profile",
                                                    prompt="choose a profile"))
        yield from labelled("trigger word captions must hold (optional), e.g. TRUCKUGC",
                            Input(id="dataset-trigger"))

    def load(self, conn) -> dict[str, Any]:
        return {"profiles": profiles.all_profiles(self.app.config),
                "taken": {d.name for d in datasets.list_all(conn)}}

    def fill(self, data) -> None:
        self.query_one("#dataset-profile", Select).set_options(
            (f"{name}", name) for name in sorted(data["profiles"]))

    def values(self) -> dict[str, Any]:
        return {"name": self.query_one("#dataset-name", Input).value.strip(),
                "profile": chosen(self.query_one("#dataset-profile", Select)),
                "trigger": self.query_one("#dataset-trigger", Input).value.strip() or None}

    def check(self, conn, values) -> Text | str:
        name, profile = values["name"], values["profile"]
        if name and name in self.data["taken"]:
            raise FormError(f"a dataset named {name!r} exists already")
        if profile is None:
            return ""
        return Text(profile_line(self.data["profiles"][profile]))

    def submit(self, conn, values) -> str:
        if not values["name"]:
            raise FormError("give the dataset a name")
        if values["profile"] is None:
            raise FormError("choose a model profile")
        d = datasets.create(conn, values["name"], values["profile"], trigger=values["trigger"],
                            config=self.app.config)
        self.created = d.name
        return f"dataset {d.name} created ({d.profile}); N then 'Add clips' brings media in"


class RulesForm(DatasetForm):
    PICK = "rules-dataset"
    TITLE = "Dataset rules"
    HINT = "What captions must hold (lint checks them as you type), eval prompts, validation."
    SUBMIT = "save the rules"

    def fields(self) -> ComposeResult:
        yield from labelled("dataset", Select([], id="rules-dataset"))
        yield from labelled("trigger word", Input(id="rules-trigger"))
        yield from labelled("trigger position", Select(
            [("at the start", "start"), ("anywhere", "anywhere")], id="rules-position",
            value="start", allow_blank=False))
        yield from labelled("caption template, e.g. TRUCKUGC, [scene], [camera motion]",
                            Input(id="rules-template"))
        yield from labelled("words per caption: at least", Input(id="rules-min", type="integer"))
        yield from labelled("words per caption: at most", Input(id="rules-max", type="integer"))
        yield from labelled("banned words (comma-separated)", Input(id="rules-banned"))
        yield from labelled("eval prompts (one per line)", TextArea(id="rules-prompts"))
        yield from labelled("negative prompt", Input(id="rules-negative"))
        yield from labelled("flaws to tag generations with (comma-separated)",
                            Input(id="rules-checklist"))
        yield from labelled("share of clips held out for validation (0-0.5)",
                            Input(id="rules-validation", type="number"))

    def show_dataset(self, d: datasets.Dataset) -> None:
        rules = d.settings.get("caption_rules", {})
        self.query_one("#rules-trigger", Input).value = d.trigger or ""
        self.query_one("#rules-position", Select).value = rules.get("trigger_position",
                                                                    "start")
        self.query_one("#rules-template", Input).value = rules.get("template") or ""
        self.query_one("#rules-min", Input).value = str(rules.get("min_words") or "")
        self.query_one("#rules-max", Input).value = str(rules.get("max_words") or "")
        self.query_one("#rules-banned", Input).value = ", ".join(rules.get("banned_words", []))
        self.query_one("#rules-prompts", TextArea).text = "\n".join(
            d.settings.get("eval_prompts", []))
        self.query_one("#rules-negative", Input).value = rules.get("negative_prompt") or ""
        self.query_one("#rules-checklist", Input).value = ", ".join(
            d.settings.get("checklist", []))
        self.query_one("#rules-validation", Input).value = f"{d.settings.get('validation', 0):g}"

    def values(self) -> dict[str, Any]:
        def text(wid: str) -> str:
            return self.query_one(wid, Input).value.strip()

        validation = number(text("#rules-validation"), "validation share")
        if validation is not None and not 0 <= validation <= 0.5:
            raise FormError("validation share: between 0 and 0.5 (0.1 holds out 10 %)")
        return {"dataset": chosen(self.query_one("#rules-dataset", Select)),
                "trigger": text("#rules-trigger"),
                "trigger_position": chosen(self.query_one("#rules-position", Select)),
                "template": text("#rules-template"),
                "min_words": number(text("#rules-min"), "at least", kind=int),
                "max_words": number(text("#rules-max"), "at most", kind=int),
                "banned": words(text("#rules-banned")),
                "eval_prompts": [line.strip() for line in
                                 self.query_one("#rules-prompts", TextArea).text.splitlines()
                                 if line.strip()],
                "negative_prompt": text("#rules-negative"),
                "checklist": words(text("#rules-checklist")),
                "validation": validation}

    def check(self, conn, values) -> str:
        low, high = values["min_words"], values["max_words"]
        if low is not None and high is not None and low > high:
            raise FormError(f"at least {low} words but at most {high}: swap them")
        return ""

    def submit(self, conn, values) -> str:
        self.check(conn, values)
        d = datasets.get(conn, values["dataset"])
        banned_now = set(d.settings.get("caption_rules", {}).get("banned_words", []))
        change = datasets.RulesChange(
            rules={"template": values["template"], "min_words": values["min_words"],
                   "max_words": values["max_words"],
                   "negative_prompt": values["negative_prompt"],
                   "trigger_position": values["trigger_position"]},
            ban=sorted(set(values["banned"]) - banned_now),
            allow=sorted(banned_now - set(values["banned"])),
            eval_prompts=values["eval_prompts"], clear_eval_prompts=True,
            checklist=values["checklist"], clear_checklist=True,
            validation=values["validation"], trigger=values["trigger"] or None)
        if not values["trigger"] and d.trigger:
            datasets.set_trigger(conn, d.id, None)
        datasets.change_rules(conn, d.id, change)
        return f"rules of {d.name} saved; the Captions screen lints with them now"
