"""Captions drafted by a vision model (issue 16): the prompt, the post-processing rules, the
requests through the fal double (written from fal's schemas, see tests/support/fal_double.py),
the rule that a person's caption is never silently replaced, and the export gate."""

from __future__ import annotations

import signal
import time

import pytest
from fal_double import MARLIN, ROUTER_VIDEO, Latency
from helpers import run_jobs, wait_for
from media_factory import tiny_clip

from lorad.captions import bulk, versions
from lorad.captions.shaping import STRIP_PHRASES, Rules, shape
from lorad.cli import main
from lorad.generation import drafting, generations
from lorad.media import clips, datasets

SETTINGS = {"examples": 3, "max_tokens": 300, "strip_phrases": []}


def test_shape_strips_openings_puts_the_trigger_first_and_cuts_long_captions():
    rules = Rules(trigger="TRUCKUGC", max_words=12)
    s = shape('"The video shows a red pickup parked by a barn, the camera pushing in slowly, '
              'soft morning light over the fields"', rules)
    assert s.text == "TRUCKUGC, A red pickup parked by a barn"
    assert any("The video shows" in c for c in s.changes) and any("first" in c for c in s.changes)
    moved = shape("A red truck, TRUCKUGC, at dusk", Rules(trigger="TRUCKUGC"))
    assert moved.text == "TRUCKUGC, A red truck, at dusk"
    anywhere = shape("a red TRUCKUGC at dusk", Rules(trigger="TRUCKUGC",
                                                      trigger_position="anywhere"))
    assert anywhere.text == "a red TRUCKUGC at dusk" and not anywhere.changes
    assert "In this image," in STRIP_PHRASES and "This clip depicts" in STRIP_PHRASES


def clip_dataset(conn, tmp_path, n: int = 3, trigger: str = "TRUCKUGC") -> datasets.Dataset:
    """A video dataset whose `n` clips are processed (real tiny mp4s made by ffmpeg)."""
    d = datasets.create(conn, "truck", "wan21-t2v-480p-portrait", trigger=trigger)
    datasets.change_rules(conn, d.id, datasets.RulesChange(
        rules={"template": "[scene], [camera motion], [lighting]"}, ban=["beautiful"]))
    media = tiny_clip(tmp_path / "shot.mp4", "red")
    for i in range(n):
        copy = tmp_path / f"clip_{i:03d}.mp4"
        # each its own content (an mp4 reads the same with bytes after its end): the same bytes
        # would be uploaded once and shared, as they should
        copy.write_bytes(media.read_bytes() + str(copy).encode())
        clip_id = clips.insert(conn, d.id, str(copy), None, size=1, mtime=0, now=time.time())
        conn.execute("UPDATE clips SET state = 'approved', media_path = ?, frames = 41, fps = 16,"
                     " width = 480, height = 848, job_id = NULL WHERE id = ?",
                     (str(copy), clip_id))
    conn.execute("DELETE FROM jobs WHERE kind = 'clip.ingest'")  # processed already, as above
    return datasets.get(conn, "truck")


def test_the_prompt_carries_the_rules_and_the_persons_own_captions(conn, tmp_path):
    d = clip_dataset(conn, tmp_path)
    versions.set_caption(conn, 1, "TRUCKUGC, a red pickup at a farm, static shot, overcast")
    versions.set_caption(conn, 2, "a model wrote this", source="draft:gemini-flash")
    rules = Rules.of(d, SETTINGS)
    prompt = drafting.prompt_for(rules, drafting.examples_of(conn, d.id, 3), "video")
    assert "Start the caption with the trigger word TRUCKUGC" in prompt
    assert "[scene], [camera motion], [lighting]" in prompt
    assert "Never use these words: beautiful." in prompt
    assert "- TRUCKUGC, a red pickup at a farm" in prompt
    assert "a model wrote this" not in prompt  # drafts are no examples of a person's style


def test_drafts_are_priced_first_sent_once_and_never_replace_a_persons_caption(
        ws, conn, fal, tmp_path, capsys):
    clip_dataset(conn, tmp_path)
    versions.set_caption(conn, 1, "TRUCKUGC, my own words")
    assert main(["-w", str(ws.root), "captions", "draft", "truck"]) == 0
    out = capsys.readouterr().out
    assert "2 clip(s) of truck to gemini-flash" in out and "about $" in out
    assert "unverified" in out and "add --yes" in out
    assert fal.submits[ROUTER_VIDEO] == 0  # priced, nothing sent
    assert main(["-w", str(ws.root), "captions", "draft", "truck", "--yes"]) == 0
    assert main(["-w", str(ws.root), "captions", "draft", "truck", "--yes"]) == 0  # again
    assert "draft on its way" in capsys.readouterr().out
    run_jobs(ws)
    assert fal.submits[ROUTER_VIDEO] == 2  # one request per clip, the second run sent none
    assert versions.current(conn, 1).text == "TRUCKUGC, my own words"
    for clip_id in (2, 3):
        v = versions.current(conn, clip_id)
        assert v.source == "draft:gemini-flash" and v.is_draft
        assert v.text.startswith("TRUCKUGC, ")  # the trigger first, "The video shows" gone
        assert f"clip_{clip_id - 1:03d}" in v.text.lower()  # the caption of this clip's own file
    sent = [r.body for r in fal.calls("POST") if r.path.endswith(ROUTER_VIDEO)][0]
    assert sent["model"] == "google/gemini-2.5-flash" and "TRUCKUGC" in sent["prompt"]
    assert sent["video_urls"][0].startswith(fal.url_base + "/files/")  # uploaded, not a path
    booked = conn.execute("SELECT COUNT(*), SUM(amount) FROM cost_entries WHERE kind = "
                          "'caption_draft'").fetchone()
    charged = [g.cost for g in generations.list_all(conn, drafts=True)]
    assert booked[0] == 2 and booked[1] == pytest.approx(sum(charged))  # what usage.cost said
    assert generations.list_all(conn) == []  # drafts are not generations to rate


def test_lint_and_export_refuse_unreviewed_drafts_until_accepted(ws, conn, fal, tmp_path,
                                                                 capsys, notices):
    clip_dataset(conn, tmp_path, n=2)
    assert main(["-w", str(ws.root), "captions", "draft", "truck", "--yes"]) == 0
    run_jobs(ws)
    wait_for(lambda: notices.titles(), message="the batch's notice")
    assert notices.titles() == ["lorad: captions drafted"]  # once, when the last one ends
    assert notices.received[0]["message"].startswith("2 drafted caption(s) wait for review")
    capsys.readouterr()
    assert main(["-w", str(ws.root), "captions", "lint", "truck"]) == 1
    assert "a model's draft no person has reviewed" in capsys.readouterr().out
    assert main(["-w", str(ws.root), "captions", "lint", "truck", "--allow-drafts"]) == 0
    assert main(["-w", str(ws.root), "dataset", "export", "truck"]) == 1
    assert "model's draft" in capsys.readouterr().out
    assert main(["-w", str(ws.root), "captions", "accept", "truck", "1"]) == 0
    assert versions.current(conn, 1).source == "accepted"
    assert versions.history(conn, 1)[-2].is_draft  # the draft stays in the history
    assert main(["-w", str(ws.root), "dataset", "export", "truck", "--allow-drafts"]) == 0
    assert main(["-w", str(ws.root), "captions", "accept", "truck", "--all"]) == 0
    assert versions.unreviewed_drafts(conn, 1) == []
    assert main(["-w", str(ws.root), "dataset", "export", "truck"]) == 0


def test_all_drafts_over_a_persons_caption_as_a_new_version(ws, conn, fal, tmp_path, capsys):
    clip_dataset(conn, tmp_path, n=1)
    versions.set_caption(conn, 1, "TRUCKUGC, my own words")
    assert main(["-w", str(ws.root), "captions", "draft", "truck", "--all"]) == 0
    assert "1 have a caption a person wrote" in capsys.readouterr().out
    assert main(["-w", str(ws.root), "captions", "draft", "truck", "--all", "--yes"]) == 0
    run_jobs(ws)
    history = versions.history(conn, 1)
    assert [v.source for v in history] == ["typed", "draft:gemini-flash"]
    assert history[0].text == "TRUCKUGC, my own words"  # kept


def test_a_caption_typed_while_the_draft_was_out_is_not_replaced(ws, conn, fal, tmp_path):
    clip_dataset(conn, tmp_path, n=1)
    p = drafting.plan(conn, datasets.get(conn, "truck"), "video", SETTINGS)
    (gen_id,) = drafting.submit(conn, p)
    versions.set_caption(conn, 1, "TRUCKUGC, typed meanwhile")
    run_jobs(ws)
    assert versions.current(conn, 1).text == "TRUCKUGC, typed meanwhile"
    g = generations.get(conn, gen_id)
    assert g.status == "completed" and "caption changed while" in g.checks["draft"]
    assert "parked on a quiet street" in open(g.output_path).read()  # the answer is kept


def test_marlin_gets_its_own_prompt_and_the_rules_shape_its_answer(ws, conn, fal, tmp_path):
    clip_dataset(conn, tmp_path, n=1)
    fal.plan_next(text="The video shows a red pickup by a barn.")
    p = drafting.plan(conn, datasets.get(conn, "truck"), "video", SETTINGS, model="marlin")
    drafting.submit(conn, p)
    run_jobs(ws)
    sent = [r.body for r in fal.calls("POST") if r.path.endswith(MARLIN)][0]
    assert sent["prompt"] == drafting.MARLIN_PROMPT and "TRUCKUGC" not in sent["prompt"]
    assert versions.current(conn, 1).text.startswith("TRUCKUGC, A red pickup by a barn.")
    with pytest.raises(drafting.DraftError, match="reads video"):
        drafting.plan(conn, datasets.get(conn, "truck"), "image", SETTINGS, model="marlin")


def test_a_refused_request_writes_no_draft_and_costs_nothing(ws, conn, fal, tmp_path):
    clip_dataset(conn, tmp_path, n=2)
    fal.plan_next(error="The content could not be processed", error_type="content_policy_violation",
                  error_status=422)
    p = drafting.plan(conn, datasets.get(conn, "truck"), "video", SETTINGS)
    ids = drafting.submit(conn, p)
    run_jobs(ws)
    statuses = sorted(generations.get(conn, i).status for i in ids)
    assert statuses == ["completed", "failed"]
    failed = next(generations.get(conn, i) for i in ids
                  if generations.get(conn, i).status == "failed")
    assert "content_policy_violation" in failed.error
    assert versions.current(conn, failed.clip_id) is None
    assert conn.execute("SELECT COUNT(*) FROM cost_entries WHERE generation_id = ?",
                        (failed.id,)).fetchone()[0] == 0


def test_the_rules_apply_in_bulk_to_drafts_with_a_preview(conn, tmp_path):
    d = clip_dataset(conn, tmp_path, n=2)
    versions.set_caption(conn, 1, "This clip depicts a truck", source="draft:marlin")
    versions.set_caption(conn, 2, "This clip depicts a van")  # a person's: left alone
    changes = bulk.shape_drafts(conn, d, Rules.of(d, SETTINGS))
    assert [(c.clip_id, c.new) for c in changes] == [(1, "TRUCKUGC, A truck")]
    assert versions.current(conn, 1).text == "This clip depicts a truck"  # a preview
    batch = bulk.apply(conn, changes)
    now = versions.current(conn, 1)
    assert now.text == "TRUCKUGC, A truck" and now.source == "draft:marlin"  # still a draft
    versions.undo_batch(conn, batch)
    assert versions.current(conn, 1).text == "This clip depicts a truck"


def test_a_daemon_killed_mid_drafting_ends_with_one_draft_per_clip(
        ws, conn, fal, tmp_path, daemon_proc, fault_report):
    """200 clips, kill -9 while requests are out: after a restart every clip has exactly one
    draft, and fal accepted exactly one request per clip (a submit whose answer was lost is
    never sent again by itself; `gens resubmit` sends it, counted here)."""
    n = 200
    ws.config_path.write_text(ws.config_path.read_text() + '\n[daemon.concurrency]\n"gen.run" = 32\n')
    clip_dataset(conn, tmp_path, n=n)
    fal.latency = Latency(queue_polls=10**9)  # everything waits in the queue until released
    p = drafting.plan(conn, datasets.get(conn, "truck"), "video", SETTINGS)
    ids = drafting.submit(conn, p)
    proc = daemon_proc.start()
    def count(where: str) -> int:  # one query per look: the double shares this process's CPU
        return conn.execute(f"SELECT COUNT(*) FROM generations WHERE clip_id IS NOT NULL AND "
                            f"{where}").fetchone()[0]

    wait_for(lambda: count("request_id IS NOT NULL") >= 5, timeout=120, interval=0.2,
             message="requests out (up to the in-flight cap)")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with fal.lock:  # release the queue
        fal.latency = Latency(queue_polls=0, run_polls=1)
        for job in fal.jobs.values():
            job.latency = Latency(queue_polls=0, run_polls=1)
    daemon_proc.start()
    wait_for(lambda: count("status IN ('completed', 'unknown')") == n, timeout=240,
             interval=0.2, message="every draft request ended")
    unknown = [i for i in ids if generations.get(conn, i).status == "unknown"]
    for gen_id in unknown:  # what a person does after checking the dashboard
        generations.resubmit(conn, gen_id)
    wait_for(lambda: count("status = 'completed'") == n, timeout=120, interval=0.2,
             message="the resubmitted ones done")
    drafts = conn.execute("SELECT clip_id, COUNT(*) FROM caption_versions WHERE source LIKE "
                          "'draft:%' GROUP BY clip_id").fetchall()
    fault_report("kill -9 while drafting 200 captions", counted="clips with exactly one draft",
                 expected=n, observed=sum(1 for _, count in drafts if count == 1),
                 daemon_alive=daemon_proc.proc.poll() is None,
                 note=f"{len(unknown)} lost answers resubmitted by hand")
    assert len(drafts) == n and all(count == 1 for _, count in drafts)
    # a lost answer may or may not have reached fal: at most one paid request more for each
    assert n <= fal.submits[ROUTER_VIDEO] <= n + len(unknown)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
async def test_the_captions_screen_marks_counts_filters_and_accepts_drafts(ws, conn, tmp_path,
                                                                           size):
    from helpers import go_to
    from helpers import pilot_until as until

    from tui.app import LoradApp
    from tui.screens.captions import DRAFT_MARK, CaptionsScreen
    from tui.widgets.rowlist import RowList

    clip_dataset(conn, tmp_path, n=3)
    versions.set_caption(conn, 1, "TRUCKUGC, a red pickup", source="draft:gemini-flash")
    versions.set_caption(conn, 2, "TRUCKUGC, my own words")
    versions.set_caption(conn, 3, "TRUCKUGC, a blue pickup", source="draft:marlin")
    app = LoradApp(ws, refresh_interval=0.05)
    async with app.run_test(size=size) as pilot:
        screen = await go_to(app, pilot, "Captions", CaptionsScreen, rows=3)
        summary = screen.query_one("#captions-summary")
        await until(pilot, lambda: "2 drafts to review" in str(summary.render()))
        table = screen.query_one(RowList)
        assert DRAFT_MARK in str(table.rows[0][3]) and DRAFT_MARK not in str(table.rows[1][3])
        assert "drafted by gemini-flash" in str(screen.query_one("#captions-facts").render())
        await pilot.press("y")  # accepted as it is, on to the next draft
        await until(pilot, lambda: versions.current(conn, 1).source == "accepted")
        assert versions.current(conn, 1).text == "TRUCKUGC, a red pickup"
        assert table.current_key == 3
        await until(pilot, lambda: "1 draft to review" in str(summary.render()))
        await pilot.press("slash", *"source:draft", "enter")
        await until(pilot, lambda: [int(r[0]) for r in table.rows] == [3], message="filtered")
        await pilot.press("k", "y")
        await until(pilot, lambda: versions.current(conn, 3).source == "accepted")
    assert versions.unreviewed_drafts(conn, 1) == []
