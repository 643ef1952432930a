"""Caption history and undo, lint rules, bulk edits, imports."""

from __future__ import annotations

import json
import time

import pytest

from lorad.captions import bulk, imports, lint, versions
from lorad.media import datasets


def add_clip(conn, dataset_id: int, name: str, *, source: str | None = None,
             state: str = "approved", frames: int = 41, fps: float = 16.0,
             media: str | None = None) -> int:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO clips (dataset_id, source_path, name, state, width, height, fps, frames,"
        " media_path, source_hash, flags, created_at, updated_at) VALUES"
        " (?,?,?,?,480,848,?,?,?,?,'[]',?,?)",
        (dataset_id, source or f"/src/{name}.mp4", name, state, fps, frames, media,
         f"hash-{name}", now, now))
    return cur.lastrowid


@pytest.fixture
def ds(conn):
    return datasets.create(conn, "trucks", "wan21-t2v-480p-portrait", trigger="TRUCKUGC")


def test_every_change_is_a_version_and_undo_walks_back(conn, ds):
    clip = add_clip(conn, ds.id, "a")
    for text in ("one", "two", "three"):
        versions.set_caption(conn, clip, text)
    assert versions.set_caption(conn, clip, "three ") is None  # unchanged: no new version
    assert versions.undo(conn, clip).text == "two"
    assert versions.undo(conn, clip).text == "one"
    assert versions.undo(conn, clip).text == ""
    assert versions.undo(conn, clip) is None
    texts = [v.text for v in versions.history(conn, clip)]
    assert texts == ["one", "two", "three", "two", "one", ""]  # nothing lost
    versions.set_caption(conn, clip, "four")
    assert versions.undo(conn, clip).text == ""
    assert versions.current(conn, clip).source == "undo"


LINT_CASES = [
    ("", "empty"),
    ("TRUCKUGC, [color] pickup truck parked in a field", "placeholder"),
    ("TRUCKUGC, red pickup\x07 truck parked in a field", "control"),
    ("red pickup truck parked in a dry field at dusk", "trigger_missing"),
    ("a red pickup TRUCKUGC parked in a dry field at dusk", "trigger_misplaced"),
    ("TRUCKUGC, truck", "too_short"),
    ("TRUCKUGC, " + "word " * 130, "too_long"),
    ("TRUCKUGC, cinematic red pickup truck parked in a field", "banned"),
    ("TRUCKUGC, red pickup truck parked, motion blur on the grass", "negative"),
    ("TRUCKUGC, red pickup truck parked\nin a dry field at dusk", "newline"),
]
RULES = lint.Rules(trigger="TRUCKUGC", banned_words=("cinematic", "drone"), min_words=5,
                   max_words=120, negative_prompt="spinning wheels, motion blur, camera pan")


@pytest.mark.parametrize("text,code", LINT_CASES)
def test_each_lint_rule(text, code):
    codes = [i.code for i in lint.lint(text, RULES)]
    assert code in codes
    issue = next(i for i in lint.lint(text, RULES) if i.code == code)
    assert issue.message and issue.severity in ("error", "warning")


def test_clean_caption_has_no_issues_and_spans_point_at_the_problem():
    good = "TRUCKUGC, faded black pickup truck parked on gravel, overcast light, static shot"
    assert lint.lint(good, RULES) == []
    text = "TRUCKUGC, [color] truck parked in a field"
    (issue,) = [i for i in lint.lint(text, RULES) if i.code == "placeholder"]
    assert text[issue.span[0]:issue.span[1]] == "[color]"


def test_the_first_problem_is_the_first_placed_error_else_warning():
    text = "a cinematic red pickup truck parked in a field, [color]"
    first = lint.first_problem(lint.lint(text, RULES))
    assert (first.code, first.span) == ("trigger_missing", (0, 0))  # where it belongs
    text = "TRUCKUGC, a red truck parked in a field, cinematic light, drone shot"
    first = lint.first_problem(lint.lint(text, RULES))
    assert text[first.span[0]:first.span[1]] == "cinematic"
    assert lint.first_problem(lint.lint("TRUCKUGC, truck", RULES)) is None  # short: no place


def test_identical_captions_across_clips_are_flagged():
    result = lint.lint_dataset({1: "TRUCKUGC, red truck in a field at dusk",
                                2: "TRUCKUGC,  red truck in a field at dusk ",
                                3: "TRUCKUGC, blue truck in a field at dusk"}, RULES)
    assert [i.code for i in result.by_clip[2]] == ["duplicate"]
    assert result.by_clip[1] == [] and result.by_clip[3] == []


def test_bulk_replace_previews_then_applies_as_one_undoable_batch(conn, ds):
    a, b, c = (add_clip(conn, ds.id, n) for n in "abc")
    versions.set_caption(conn, a, "TRUCKUGC, red truck, cinematic light")
    versions.set_caption(conn, b, "TRUCKUGC, blue truck, cinematic light")
    versions.set_caption(conn, c, "TRUCKUGC, green truck, soft light")
    changes = bulk.replace(conn, ds, "cinematic light", "natural light")
    assert [ch.clip_id for ch in changes] == [a, b]
    assert versions.current(conn, a).text.endswith("cinematic light")  # preview wrote nothing
    batch = bulk.apply(conn, changes)
    assert versions.current(conn, a).text == "TRUCKUGC, red truck, natural light"
    versions.set_caption(conn, b, "TRUCKUGC, blue truck edited by hand")
    undone, kept = versions.undo_batch(conn, batch)
    assert (undone, kept) == (1, 1)
    assert versions.current(conn, a).text == "TRUCKUGC, red truck, cinematic light"
    assert versions.current(conn, b).text == "TRUCKUGC, blue truck edited by hand"


def test_bulk_regex_prepend_append_trigger_and_template(conn, ds):
    a, b = add_clip(conn, ds.id, "a"), add_clip(conn, ds.id, "b")
    versions.set_caption(conn, a, "TRUCKUGC, red Ford F-150 parked")
    changes = bulk.replace(conn, ds, r"(\w+) Ford", r"Ford \1", regex=True)
    assert changes[0].new == "TRUCKUGC, Ford red F-150 parked"
    with pytest.raises(bulk.BulkError, match="bad regular expression"):
        bulk.replace(conn, ds, "(", "x", regex=True)
    assert bulk.prepend(conn, ds, "UGC, ")[0].new == "UGC, TRUCKUGC, red Ford F-150 parked"
    assert bulk.append(conn, ds, ", static shot")[0].new.endswith("parked, static shot")
    assert bulk.set_trigger(conn, ds, "TRK")[0].new == "TRK, red Ford F-150 parked"
    datasets.update_settings(conn, ds.id, caption_rules={"template": "[color] truck, [setting]"})
    ds = datasets.get(conn, "trucks")
    (seed,) = bulk.apply_template(conn, ds)
    assert (seed.clip_id, seed.new) == (b, "TRUCKUGC, [color] truck, [setting]")


def test_import_sidecars_json_list_and_jsonl(conn, ds, tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    ids = {n: add_clip(conn, ds.id, f"{n}-1234", source=str(src / f"{n}.mp4")) for n in "abc"}
    (src / "a.txt").write_text("TRUCKUGC, from a sidecar\n")
    report = imports.auto(conn, ds, None)
    assert report.imported == 1 and versions.current(conn, ids["a"]).source == "import"
    listing = tmp_path / "dataset.json"
    listing.write_text(json.dumps([{"video": str(src / "b.mp4"), "caption": "TRUCKUGC, json b",
                                    "fps": 16}, {"video": "nowhere.mp4", "caption": "x"}]))
    report = imports.auto(conn, ds, listing)
    assert report.imported == 1 and report.unmatched == ["nowhere.mp4"]
    assert versions.current(conn, ids["b"]).text == "TRUCKUGC, json b"
    meta = tmp_path / "meta.jsonl"
    meta.write_text('{"video_path": "raw/c.mp4", "caption": "TRUCKUGC, jsonl c"}\n\nnot json\n')
    report = imports.auto(conn, ds, meta)
    assert report.imported == 1 and len(report.problems) == 1
    assert versions.current(conn, ids["c"]).text == "TRUCKUGC, jsonl c"
    # importing the same again changes nothing, and a whole import undoes in one step
    assert imports.auto(conn, ds, meta).imported == 0
    versions.undo_batch(conn, versions.last_batch(conn, ds.id))
    assert versions.current(conn, ids["c"]).text == ""


def test_the_cli_and_the_captions_screen_lint_the_same_clips(ws, conn, ds, capsys):
    """One rule decides which clips get captions: not in error, not duplicates (the CLI used
    to lint clips in error and skip rejected ones, unlike the screen)."""
    from lorad.captions import review
    from lorad.cli import main

    kept = add_clip(conn, ds.id, "kept", state="ready")
    rejected = add_clip(conn, ds.id, "rejected", state="rejected")
    add_clip(conn, ds.id, "broken", state="error")
    dup = add_clip(conn, ds.id, "dup", state="ready")
    conn.execute("UPDATE clips SET duplicate_of = ? WHERE id = ?", (kept, dup))
    for clip in (kept, rejected):
        versions.set_caption(conn, clip, f"TRUCKUGC, a white pickup number {clip} parked on a "
                                         "gravel lot at dusk")
    shown = [r.id for r in review.dataset_captions(conn, ds).rows]
    assert shown == [kept, rejected]
    assert main(["-w", str(ws.root), "captions", "lint", "trucks", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {}  # the uncaptioned others are not linted


def test_bulk_apply_goes_before_or_after_the_operation(ws, conn, ds, capsys):
    """`lorad captions bulk D template --apply`, as the README writes it, used to be a usage
    error: --apply was only accepted before the operation."""
    from lorad.cli import main

    clip = add_clip(conn, ds.id, "a", state="ready")
    versions.set_caption(conn, clip, "TRUCKUGC, a red truck parked on a dirt road at noon")
    w = ["-w", str(ws.root)]
    assert main([*w, "captions", "bulk", "trucks", "append", ", dusty"]) == 0
    assert versions.current(conn, clip).text.endswith("noon")  # a preview writes nothing
    assert main([*w, "captions", "bulk", "trucks", "append", ", dusty", "--apply"]) == 0
    assert versions.current(conn, clip).text.endswith("noon, dusty")
    assert main([*w, "captions", "bulk", "trucks", "--apply", "prepend", "old "]) == 0
    assert versions.current(conn, clip).text.startswith("old TRUCKUGC")


def test_control_characters_in_captions_never_reach_the_terminal_raw(ws, conn, ds, capsys):
    """An imported caption with ESC and NUL was printed as is by `captions show`."""
    from lorad.cli import main

    clip = add_clip(conn, ds.id, "a", state="ready")
    versions.set_caption(conn, clip, "TRUCKUGC, red\x1b[2J truck\x00 parked\x9b")
    assert main(["-w", str(ws.root), "captions", "show", "trucks", str(clip)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x00" not in out and "\x9b" not in out
    assert "red\\x1b[2J truck\\x00 parked\\x9b" in out
