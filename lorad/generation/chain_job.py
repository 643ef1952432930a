"""The `chain.run` job: a shot chain's shots one after the other, each a generation of its own
(priced, submitted once, paid for once, by `gen.run`), the last frame of each taken exactly for
the next when the chain says so, then one video of them all and the chain's manifest."""

from __future__ import annotations

import asyncio
import json
import posixpath
import time
from pathlib import Path
from typing import Any

from lorad.core import notify
from lorad.core.errors import PermanentError
from lorad.core.handlers import JobContext, register
from lorad.generation import chains, generations, manifests
from lorad.media import convert

DONE = ("completed", "failed", "cancelled", generations.UNKNOWN)


def continuity_frame(chain: chains.Chain, index: int, gen_id: int) -> Path:
    """Where shot `index`'s last frame is kept (named by its generation: a retake makes a new
    one, and the old stays beside it)."""
    return Path(chain.folder) / "continuity" / f"shot-{index + 1:02d}-gen-{gen_id}-last.png"


def start_image(chain: chains.Chain, index: int) -> str | None:
    spec = chain.spec
    own = spec.shots[index].image
    if own:
        return own
    if spec.chain_last_frame and index > 0:
        previous = chain.shots[index - 1]
        return str(continuity_frame(chain, index - 1, previous)) if previous else None
    return spec.image


async def wait_for(ctx: JobContext, gen_id: int, poll: float) -> generations.Generation:
    while True:
        g = generations.get(ctx.conn, gen_id)
        if g.status in DONE:
            return g
        ctx.check_cancelled()
        if ctx.stopping.is_set():
            raise asyncio.CancelledError  # handed back: the next daemon goes on waiting
        await ctx.pause(poll)


@register(chains.JOB_KIND, concurrency=4, waits=True, process_pool=True)
async def run(ctx: JobContext) -> dict[str, Any]:
    conn = ctx.conn
    config = ctx.ws.config()
    poll = float(config["generations"]["poll_seconds"])
    chain = chains.get_by_id(conn, ctx.payload["chain_id"])
    chains.update(conn, chain.id, status="running", error=None)
    n = chain.shot_count
    for index in range(n):
        chain = chains.get_by_id(conn, chain.id)
        gen_id = chain.shots[index]
        if gen_id is None:
            image = start_image(chain, index)
            ctx.progress(index / n, f"shot {index + 1}/{n}: submitting", force=True)
            gen_id = chains.start_shot(conn, chain, index, image)
        ctx.progress(index / n, f"shot {index + 1}/{n}: generating", force=True)
        g = await wait_for(ctx, gen_id, poll)
        if g.status != "completed":
            if g.status == generations.UNKNOWN:  # the person decides: it may be paid for
                g.error = (f"{g.error}; decide first: `lorad gens resubmit {g.id}` or "
                           f"`lorad gens forget {g.id}`")
            message = (f"shot {index + 1} {g.status}: {g.error or 'no reason given'}; "
                       f"`lorad chain retake {chain.name} {index + 1}` runs shots {index + 1}"
                       f"..{n} again (it shows the price first)")
            chains.update(conn, chain.id, status="failed", error=message)
            await asyncio.to_thread(notify.send, config, "generations_done",
                                    f"lorad: chain {chain.name} stopped at shot {index + 1}",
                                    message)
            raise PermanentError(message)
        if chain.spec.chain_last_frame and index + 1 < n:
            frame = continuity_frame(chain, index, gen_id)
            if not frame.exists():
                await ctx.in_process(convert.last_frame, Path(g.output_path), frame)
    chain = chains.get_by_id(conn, chain.id)
    outputs = [Path(generations.get(conn, gid).output_path) for gid in chain.shots]
    final = Path(chain.folder) / f"{chain.name}.mp4"
    ctx.progress(0.99, f"joining {n} shots", force=True)
    await ctx.in_process(convert.concat, outputs, final)
    facts = await asyncio.to_thread(convert.probe, final)
    shots = [generations.get(conn, gid) for gid in chain.shots]
    manifest = manifests.for_chain(chain, shots, final, facts)
    (Path(chain.folder) / "manifest.json").write_text(json.dumps(manifest, indent=2,
                                                                  sort_keys=True) + "\n")

    def record(c) -> None:
        chains.update(c, chain.id, status="completed", error=None, output_path=str(final),
                      manifest=manifest)
        notify.soon(config, "generations_done", f"lorad: chain {chain.name} done",
                    f"{n} shots, {facts.frames} frames joined in {final.name}; about "
                    f"${manifest['cost']:.2f}")

    ctx.on_success(record)
    return {"chain": chain.name, "output": posixpath.basename(str(final)),
            "frames": facts.frames, "at": time.time()}
