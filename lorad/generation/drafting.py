"""Caption drafts from a vision model (`lorad captions draft`): one paid request per clip to a
captioning endpoint, its answer shaped by rules that are data and written as a caption version
with source `draft:<model>`, which a person then reviews.

A draft request is a generation row pointing at its clip (`generations.clip_id`): it is
submitted once, followed across daemon restarts, cancelled and booked in the ledger by the same
`gen.run` job as any generation. What this module adds: which captioner reads which media, the
prompt built from the dataset's rules and the person's own captions, the post-processing of the
answer, and the rule for when a draft may become the clip's caption (never over a caption a
person wrote, unless asked; never over a caption changed while the request was out).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from lorad.captions import versions
from lorad.captions.shaping import Rules, shape
from lorad.core.errors import LoradError
from lorad.core.store import transaction
from lorad.generation import endpoints, generations
from lorad.media import clips, datasets


class DraftError(LoradError):
    pass


@dataclass(frozen=True)
class Captioner:
    """What `--model` names: an endpoint, the model behind it, the media it reads."""

    name: str
    endpoint: str
    model: str | None  # the router's model slug (None: the endpoint is the model)
    media: str  # video | image: what the dataset's clips must be
    follows_prompt: bool  # False: the endpoint's own prompt; the rules shape its answer after
    on_pod: bool = False  # a [captioners.NAME] command on the user's pod

    @property
    def source(self) -> str:
        return versions.draft_source(self.name)


CAPTIONERS = {c.name: c for c in [
    Captioner("gemini-flash", endpoints.ROUTER_VIDEO, "google/gemini-2.5-flash", "video", True),
    Captioner("gemini-flash-image", endpoints.ROUTER_VISION, "google/gemini-2.5-flash", "image",
              True),
    Captioner("marlin", endpoints.MARLIN, None, "video", False),
]}
DEFAULT_FOR = {"video": "gemini-flash", "image": "gemini-flash-image"}
# Marlin is trained on one prompt; "overriding usually degrades output quality"
# (https://fal.ai/models/fal-ai/marlin/llms.txt).
MARLIN_PROMPT = ("Provide a spatial description of this clip followed by time-ranged events.\n"
                 "For each event, give the time range as <start - end> and a short description.")
SYSTEM_PROMPT = ("You write captions for training a LoRA on video or images. Answer with the "
                 "caption only: no preamble, no quotes, no markdown, one line.")
def pod_captioner(name: str | None, media: str) -> Captioner:
    """A captioner declared as a command on a pod ([captioners.NAME] in lorad.toml)."""
    if not name:
        raise DraftError("--service pod drafts with a captioner declared in lorad.toml: name it "
                         "with --model NAME ([captioners.NAME]; docs/COMMAND_TRAINERS.md)")
    endpoint_id = name if name.startswith(endpoints.POD_CAPTION_PREFIX) else (
        endpoints.POD_CAPTION_PREFIX + name)
    try:
        endpoint = endpoints.get(endpoint_id)
    except endpoints.ParamError as exc:
        if "unknown endpoint" not in str(exc):
            raise DraftError(str(exc)) from None  # declared, with a mistake: where and what
        raise DraftError(f"no captioner {name!r} on a pod: declare [captioners."
                         f"{name.removeprefix(endpoints.POD_CAPTION_PREFIX)}] in lorad.toml "
                         "(docs/COMMAND_TRAINERS.md)") from None
    found = Captioner(endpoint_id.removeprefix(endpoints.POD_CAPTION_PREFIX), endpoint_id, None,
                      endpoint.reads or "video", True, on_pod=True)
    if found.media != media:
        raise DraftError(f"{found.name} reads {found.media}, but this dataset holds {media}")
    return found


def captioner_for(name: str | None, media: str, service: str = "fal") -> Captioner:
    """The captioner `--model` names (default: the one for the dataset's media). A name with a
    slash is any model behind fal's OpenRouter endpoints, e.g. qwen/qwen2.5-vl-72b-instruct;
    with `service` pod, a captioner declared as a command on a pod."""
    if service == "pod" or (name or "").startswith(endpoints.POD_CAPTION_PREFIX):
        return pod_captioner(name, media)
    if not name:
        if media == "audio":
            raise DraftError("no hosted captioner drafts tag prompts for music: declare an "
                             "audio-language model on your pod ([captioners.NAME] with reads = "
                             "\"audio\") and draft with --service pod --model NAME")
        if media not in DEFAULT_FOR:
            raise DraftError(f"no captioner drafts {media} yet (known: "
                             f"{', '.join(CAPTIONERS)})")
        name = DEFAULT_FOR[media]
    if name in CAPTIONERS:
        found = CAPTIONERS[name]
    elif "/" in name:
        endpoint = endpoints.ROUTER_VIDEO if media == "video" else endpoints.ROUTER_VISION
        found = Captioner(name, endpoint, name, media, True)
    else:
        raise DraftError(f"unknown captioner {name!r}; known: {', '.join(CAPTIONERS)}, or an "
                         "OpenRouter model id such as google/gemini-2.5-pro")
    if found.media != media:
        raise DraftError(f"{found.name} reads {found.media}, but this dataset holds {media}: "
                         f"use {DEFAULT_FOR.get(media, 'another captioner')}")
    return found


# -- the prompt ---------------------------------------------------------------------------

# ACE-Step's TRAIN_INSTRUCTION.md labels tracks with an audio-language model and one fixed
# prompt asking for the tags; this is that request, as one line of tags
AUDIO_PROMPT = ("Describe this music track as one line of comma-separated tags, in this order: "
                "genre, mood, instruments, tempo in bpm, production, atmosphere, vocal type "
                "(instrumental when there are no vocals). Tags only, lower case, no sentences.")


def prompt_for(rules: Rules, examples: list[str], media: str) -> str:
    """The instructions sent with a clip: the dataset's rules, and the style of the person's
    own captions."""
    if media == "audio":
        lines = [AUDIO_PROMPT]
        if rules.banned:
            lines.append(f"Never use these words: {', '.join(rules.banned)}.")
        if examples:
            lines.append("Tag prompts a person wrote for other tracks of this dataset; match "
                         "their vocabulary:")
            lines += [f"- {e}" for e in examples]
        return "\n".join(lines)
    thing = "video clip" if media == "video" else "image"
    lines = [f"Write one training caption for this {thing}: what is seen, the camera's motion "
             "and the light, in plain words." if media == "video" else
             f"Write one training caption for this {thing}: what is seen and the light, in "
             "plain words."]
    if rules.trigger:
        where = ("Start the caption with" if rules.trigger_position == "start"
                 else "Include")
        lines.append(f"{where} the trigger word {rules.trigger} exactly as written.")
    if rules.template:
        lines.append(f"Follow this template, filling each [slot]: {rules.template}")
    if rules.min_words or rules.max_words:
        low, high = rules.min_words, rules.max_words
        span = (f"{low}-{high}" if low and high else f"at least {low}" if low
                else f"at most {high}")
        lines.append(f"Use {span} words.")
    if rules.banned:
        lines.append(f"Never use these words: {', '.join(rules.banned)}.")
    if examples:
        lines.append("Captions a person wrote for other clips of this dataset; match their "
                     "style and length:")
        lines += [f"- {e}" for e in examples]
    return "\n".join(lines)


def examples_of(conn: sqlite3.Connection, dataset_id: int, count: int) -> list[str]:
    """Up to `count` captions people wrote (drafts and empty ones left out), the longest
    distinct ones first: they show the style the drafts should have."""
    written = [v.text for v in versions.current_texts(conn, dataset_id).values()
               if v.text.strip() and not v.is_draft]
    return sorted(set(written), key=lambda t: (-len(t.split()), t))[:count]


# -- requests -----------------------------------------------------------------------------

@dataclass
class Plan:
    """The draft requests `captions draft` would send, priced; nothing is sent yet."""

    dataset: datasets.Dataset
    captioner: Captioner
    clip_ids: list[int]
    params: dict[int, dict[str, Any]]  # clip id -> the request
    cost: float
    overwrite: list[int]  # clips whose person-written caption a draft would go on top of
    pending: list[int]  # clips left out: a draft request for them is already on its way
    rules: Rules

    @property
    def price_caveat(self) -> str:
        return endpoints.price_caveat(self.captioner.endpoint)


def request_params(captioner: Captioner, media_path: str, prompt: str, max_tokens: int,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request's parameters; the clip is a local file the job uploads before sending.
    `extra`: what a request to a pod also carries (the pod, its rate)."""
    local = generations.LOCAL + media_path
    if captioner.on_pod:
        return {"clip": local, "prompt": prompt, **(extra or {})}
    if not captioner.follows_prompt:  # Marlin: its own prompt
        return {"video_url": local, "prompt": MARLIN_PROMPT, "max_tokens": max(64, max_tokens)}
    media_field = "video_urls" if captioner.media == "video" else "image_urls"
    return {media_field: [local], "prompt": prompt, "system_prompt": SYSTEM_PROMPT,
            "model": captioner.model, "max_tokens": max_tokens, "temperature": 0.2}


def plan(conn: sqlite3.Connection, d: datasets.Dataset, media: str, settings: dict[str, Any],
         *, model: str | None = None, everything: bool = False, template: str | None = None,
         clip_ids: list[int] | None = None, service: str = "fal",
         extra: dict[str, Any] | None = None) -> Plan:
    """The requests for the dataset's clips (by default those without a caption; with
    `everything` all of them, a draft going on top of a person's caption as a new version)."""
    captioner = captioner_for(model, media, service)
    rules = Rules.of(d, settings, template)
    prompt = prompt_for(rules, examples_of(conn, d.id, int(settings.get("examples", 3))), media)
    current = versions.current_texts(conn, d.id)
    pending = generations.drafts_pending(conn, d.id)
    chosen, overwrite, params, cost = [], [], {}, 0.0
    endpoint = endpoints.get(captioner.endpoint)
    for c in clips.list_clips(conn, d.id):
        if c.state in ("error", "rejected", "processing") or not c.media_path:
            continue
        if clip_ids is not None and c.id not in clip_ids:
            continue
        if c.id in pending:
            continue
        now = current.get(c.id)
        written = now is not None and now.text.strip() and not now.is_draft
        if written and not everything:
            continue
        if written:
            overwrite.append(c.id)
        request = request_params(captioner, c.media_path, prompt,
                                 int(settings.get("max_tokens", 300)), extra)
        problems = endpoint.validate(request)
        if problems:
            raise DraftError("; ".join(problems))
        chosen.append(c.id)
        params[c.id] = request
        cost += endpoint.price(request)
    return Plan(d, captioner, chosen, params, round(cost, 6), overwrite, sorted(pending),
                rules)


def submit(conn: sqlite3.Connection, p: Plan) -> list[int]:
    """Queue the planned requests, exactly as planned and priced (one transaction)."""
    current = versions.current_texts(conn, p.dataset.id)
    ids = []
    with transaction(conn):
        for clip_id in p.clip_ids:
            base = current.get(clip_id)
            draft = {"model": p.captioner.name, "source": p.captioner.source,
                     "base_version_id": base.id if base else None,
                     "overwrite": clip_id in p.overwrite, "rules": p.rules.as_dict()}
            ids.append(generations.create_draft_request(
                conn, p.captioner.endpoint, p.params[clip_id], clip_id=clip_id,
                dataset_id=p.dataset.id, draft=draft))
    return ids


def record(conn: sqlite3.Connection, g: generations.Generation, raw: str) -> str:
    """Write a finished request's answer as the clip's draft caption, if it may be; returns
    what happened, in words (for the generation's note)."""
    rules = Rules.from_dict(g.draft.get("rules", {}))
    shaped = shape(raw, rules)
    if not shaped.text:
        return "the model answered with no caption"
    now = versions.current(conn, g.clip_id)
    base = g.draft.get("base_version_id")
    if (now.id if now else None) != base:
        return ("not written: the caption changed while the draft was being made (the draft "
                "is kept in the request's output file)")
    if now is not None and now.text.strip() and not now.is_draft and not g.draft.get(
            "overwrite"):
        return "not written: a person's caption is there"
    versions.set_caption(conn, g.clip_id, shaped.text,
                         source=g.draft.get("source") or versions.draft_source("model"))
    return "drafted" + (f" ({'; '.join(shaped.changes)})" if shaped.changes else "")
