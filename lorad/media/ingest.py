"""Ingest jobs: turn a source file into a training clip for its dataset's profile.

`clip.ingest` hashes the source (exact duplicates are linked, not processed twice), probes it,
plans the conversion, runs the single ffmpeg pass, analyses motion / bars / perceptual hash and
records everything on the clip in the transaction that finishes the job. `clip.split` cuts a long
source at scene changes and queues one ingest per shot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path

from lorad.core.errors import PermanentError
from lorad.core.handlers import JobContext, register
from lorad.media import analysis, audio, clips, convert, datasets, profiles

CORES = os.cpu_count() or 1


def hash_file(path: Path) -> tuple[str, int, float]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    st = path.stat()
    return digest.hexdigest(), st.st_size, st.st_mtime


def clip_paths(ctx: JobContext, dataset: datasets.Dataset, clip: clips.Clip,
               kind: str) -> tuple[Path, Path]:
    base = ctx.ws.media_dir() / dataset.name
    if kind == "audio":  # the track and its waveform (shown where a video's filmstrip is)
        return base / "clips" / f"{clip.name}.mp3", base / "filmstrips" / f"{clip.name}.png"
    ext = ".mp4" if kind == "video" else ".png"
    return base / "clips" / f"{clip.name}{ext}", base / "filmstrips" / f"{clip.name}.jpg"


@register(clips.INGEST_KIND, concurrency=CORES)
async def ingest(ctx: JobContext):
    conn = ctx.conn
    clip = clips.get(conn, ctx.payload["clip_id"])
    dataset = datasets.get_by_id(conn, clip.dataset_id)
    config = ctx.ws.config()
    profile = profiles.get(dataset.profile, config)
    if clip.state not in clips.REVIEW_STATES:
        clips.update(conn, clip.id, state="processing", error=None)
    try:
        return await _ingest(ctx, clip, dataset, profile, config)
    except convert.MediaError as exc:
        clips.update(conn, clip.id, state="error", error=str(exc))
        clips.release_duplicates(conn, clip.id, unless_hash=None,
                                 why=f"it failed ({str(exc)[:80]})")
        raise PermanentError(f"{Path(clip.source_path).name}: {exc}") from None


def _still_good(clip: clips.Clip, profile: profiles.Profile) -> bool:
    """What an earlier run made from the same bytes is still there and current."""
    if clip.error:
        return False
    if clip.duplicate_of is not None:
        return True
    return bool(clip.media_path and Path(clip.media_path).exists()
                and clip.profile_fingerprint == profile.fingerprint())


async def _ingest(ctx: JobContext, clip: clips.Clip, dataset: datasets.Dataset,
                  profile: profiles.Profile, config):
    conn = ctx.conn
    source = Path(clip.source_path)
    if not source.exists():
        raise convert.MediaError(
            f"the source file is gone ({source}): put it back and reprocess the clip (`lorad "
            f"clips reprocess DATASET {clip.id}`, r on the Clips screen), or reject it (`lorad "
            f"clips reject DATASET {clip.id}`, x on the Clips screen)")
    ctx.progress(0.05, "hashing source", force=True)
    digest, size, mtime = await asyncio.to_thread(hash_file, source)
    # Written and checked in one synchronous step on the daemon's loop, so of two identical
    # files processed at once exactly one sees the other and becomes its duplicate.
    clips.update(conn, clip.id, source_hash=digest, source_size=size, source_mtime=mtime)
    if ctx.payload.get("if_changed") and digest == clip.source_hash and _still_good(clip,
                                                                                    profile):
        clips.update(conn, clip.id, state=clip.state if clip.state in clips.REVIEW_STATES
                     else "ready")
        ctx.progress(1.0, "same content: nothing to do", force=True)
        return {"clip_id": clip.id, "unchanged": True}
    if clip.source_hash and digest != clip.source_hash:
        clips.release_duplicates(conn, clip.id, unless_hash=digest,
                                 why="its source's content changed")
    original = clips.same_source(conn, clip, digest)
    if original is not None:
        note = f"exact duplicate of clip {original.id} ({original.source_path})"

        def link(c):
            strip = clips.get(c, original.id).filmstrip_path
            clips.update(c, clip.id, state="rejected", duplicate_of=original.id, note=note,
                         flags=json.dumps(["duplicate"]), error=None, media_path=None,
                         filmstrip_path=strip)

        ctx.on_success(link)
        return {"duplicate_of": original.id}

    if profile.media == "audio":
        return await _ingest_track(ctx, clip, dataset, profile, source)
    ctx.progress(0.15, "probing")
    probe = await asyncio.to_thread(convert.probe, source)
    plan = convert.plan(probe, profile, clip.source_range)
    out_media, out_strip = clip_paths(ctx, dataset, clip, plan.media)
    ctx.progress(0.25, f"converting to {plan.width}x{plan.height}, {plan.frames} frames",
                 force=True)
    converted = await convert.convert(source, probe, profile, plan, out_media, out_strip)
    ctx.progress(0.85, "analysing motion and duplicates")
    aw, ah = plan.analysis_size
    facts = await asyncio.to_thread(analysis.analyse, converted.analysis_frames, aw, ah)
    flags = list(plan.flags) + [facts.motion_class]
    if facts.letterbox:
        flags.append("letterboxed")
    note = None
    limit = config["ingest"]["near_duplicate_distance"]
    for other_id, other_name, phash in clips.hashed_siblings(conn, clip):
        distance = analysis.hamming(phash, facts.dhash)
        if distance <= limit:
            flags.append("near_duplicate")
            note = f"looks like clip {other_id} ({other_name}), distance {distance}"
            break
    duration = plan.frames / plan.fps if plan.fps else None

    def record(c):
        now = clips.get(c, clip.id)
        # the user may have reviewed it meanwhile; "rejected" as a copy was not their choice
        current = "ready" if now.duplicate_of is not None else now.state
        clips.update(c, clip.id, state=current if current in clips.REVIEW_STATES else "ready",
                     error=None, note=note, duplicate_of=None, media_kind=plan.media,
                     media_path=str(out_media), filmstrip_path=str(out_strip),
                     width=plan.width, height=plan.height, fps=plan.fps, frames=plan.frames,
                     duration=duration, motion=facts.motion,
                     flags=json.dumps(sorted(set(flags))), phash=facts.dhash,
                     probe=json.dumps(probe.as_dict()), analysis=json.dumps(facts.as_dict()),
                     profile_fingerprint=profile.fingerprint())

    ctx.on_success(record)
    ctx.progress(1.0, "done", force=True)
    return {"clip_id": clip.id, "frames": plan.frames, "flags": sorted(set(flags))}


async def _ingest_track(ctx: JobContext, clip: clips.Clip, dataset: datasets.Dataset,
                        profile: profiles.Profile, source: Path):
    """A music track (lorad.media.audio): measured, normalised, MP3 and a waveform."""
    ctx.progress(0.15, "probing")
    probe = await asyncio.to_thread(audio.probe, source)
    plan = audio.plan(probe, profile, clip.source_range)
    ctx.progress(0.25, f"measuring {plan.seconds:.0f} s", force=True)
    measures = audio.score(await audio.measure(source, plan), probe)
    gain = audio.PEAK_TARGET_DB - measures.peak_db
    out_media, out_wave = clip_paths(ctx, dataset, clip, "audio")
    ctx.progress(0.55, f"normalising ({gain:+.1f} dB) and writing MP3 {profile.audio_bitrate}",
                 force=True)
    await audio.convert(source, plan, profile, gain, out_media, out_wave)
    flags = sorted(set(plan.flags) | set(audio.flags_of(measures)))
    facts = {**measures.as_dict(), "gain_db": round(gain, 2), "window": [plan.start,
                                                                           plan.seconds]}

    def record(c):
        now = clips.get(c, clip.id)
        current = "ready" if now.duplicate_of is not None else now.state
        clips.update(c, clip.id, state=current if current in clips.REVIEW_STATES else "ready",
                     error=None, note=plan.note, duplicate_of=None, media_kind="audio",
                     media_path=str(out_media), filmstrip_path=str(out_wave), width=None,
                     height=None, fps=None, frames=None, duration=plan.seconds, motion=None,
                     flags=json.dumps(flags), phash=None, probe=json.dumps(probe.as_dict()),
                     analysis=json.dumps(facts), profile_fingerprint=profile.fingerprint())

    ctx.on_success(record)
    ctx.progress(1.0, "done", force=True)
    return {"clip_id": clip.id, "seconds": plan.seconds, "score": measures.score,
            "flags": flags}


# ---- scene splitting ------------------------------------------------------------------------

SHOWINFO_TIME = re.compile(r"pts_time:\s*([0-9.]+)")


async def scene_cuts(path: Path, threshold: float, duration: float | None,
                     on_progress=None) -> list[float]:
    """Times (s) where ffmpeg's scene score exceeds `threshold`, decoding a small copy."""
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-an", "-vf",
            f"scale=160:-2,select='gt(scene,{threshold})',showinfo", "-f", "null", "-",
            "-progress", "pipe:1", "-nostats"]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    cuts: list[float] = []
    tail: list[str] = []

    async def read_err():
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            if "showinfo" in line and "pts_time" in line:
                match = SHOWINFO_TIME.search(line)
                if match:
                    cuts.append(float(match.group(1)))
            else:
                tail.append(line.strip())
                del tail[:-5]

    async def read_out():
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("out_time_us=") and duration and on_progress:
                try:
                    on_progress(min(1.0, int(line.split("=", 1)[1]) / 1e6 / duration))
                except ValueError:
                    pass

    try:
        await asyncio.gather(read_err(), read_out())
        await proc.wait()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise convert.MediaError(f"scene detection failed: {tail[-1] if tail else proc.returncode}")
    return cuts


def shots(cuts: list[float], duration: float, min_seconds: float) -> list[tuple[float, float]]:
    """Shot ranges between cuts; a cut closer than min_seconds to the previous one is ignored."""
    bounds = [0.0]
    for t in sorted(cuts):
        if t - bounds[-1] >= min_seconds and duration - t >= min_seconds:
            bounds.append(round(t, 3))
    bounds.append(round(duration, 3))
    return list(zip(bounds, bounds[1:], strict=False))


@register(clips.SPLIT_KIND, concurrency=CORES)
async def split(ctx: JobContext):
    conn = ctx.conn
    dataset = datasets.get_by_id(conn, ctx.payload["dataset_id"])
    config = ctx.ws.config()
    profile = profiles.get(dataset.profile, config)
    path = Path(ctx.payload["path"])
    try:
        st = path.stat()
    except OSError:
        st = None

    def failed(message: str) -> PermanentError:
        """The failure is a clip in error too, so lists and `--wait` show it."""
        clips.record_split_failure(conn, dataset.id, str(path), message,
                                   size=st.st_size if st else None,
                                   mtime=st.st_mtime if st else None, job_id=ctx.job.id)
        return PermanentError(f"{path.name}: {message}")

    if st is None:
        raise failed(f"the source file is gone ({path}): put it back, then `lorad clips "
                     f"reprocess {dataset.name} --errors`")
    try:
        probe = await asyncio.to_thread(convert.probe, path)
        if probe.kind != "video" or not probe.duration:
            raise convert.MediaError("scene splitting needs a video with a known duration")
        ctx.progress(0.0, "finding scene changes", force=True)
        cuts = await scene_cuts(path, config["ingest"]["scene_threshold"], probe.duration,
                                lambda f: ctx.progress(f * 0.95, "finding scene changes"))
    except convert.MediaError as exc:
        raise failed(str(exc)) from None
    ranges = shots(cuts, probe.duration, config["ingest"]["min_shot_seconds"])
    need = profile.frames_needed() / profile.fps if profile.fps else 0
    usable = [r for r in ranges if r[1] - r[0] >= need]
    too_short = len(ranges) - len(usable)
    if not usable:
        raise failed(f"none of its {len(ranges)} shot(s) is as long as the {need:.2f} s "
                     f"profile {profile.name} needs; add it without --split-scenes, or lower "
                     "ingest.min_shot_seconds / scene_threshold")

    def create(c):
        clips.clear_split_failure(c, dataset.id, str(path))
        for start, end in usable:
            if not clips.has_shot(c, dataset.id, str(path), (start, end)):
                clips.insert(c, dataset.id, str(path), (start, end), size=st.st_size,
                             mtime=st.st_mtime, parent_job=ctx.job.id)

    ctx.on_success(create)
    summary = f"{len(usable)} shot(s) queued"
    if too_short:
        summary += f", {too_short} shorter than {need:.2f} s left out"
    ctx.progress(1.0, summary, force=True)
    return {"shots": len(ranges), "queued": len(usable), "too_short": too_short,
            "min_seconds": round(need, 3), "cuts": [round(c, 3) for c in cuts],
            "summary": f"{path.name}: {summary}"}
