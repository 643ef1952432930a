"""What the user typed survives: concurrent edits from several terminals, an editor open while
the CLI changes the same caption, a TUI closed (or killed) in the middle of typing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import daemon_env
from helpers import wait_for

from lorad.core import store
from lorad.media import datasets


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(Path(os.readlink(f"/proc/{pid}/fd/{fd}")) == path
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # it is gone, or closing the descriptor we were looking at
        return False


def test_concurrent_rules_edits_keep_every_addition(ws, conn, fault_report):
    """12 concurrent `dataset rules --eval-prompt` calls kept 6: each read the settings, then
    wrote its own copy back over the others'."""
    d = datasets.create(conn, "d", "wan21-t2v-480p-portrait")
    # Hold the write lock until all 12 have the store open, so that they all race for it at once
    # (their starts are otherwise spread over seconds of Python start-up).
    holder = store.connect(ws.db_path)
    holder.execute("BEGIN IMMEDIATE")
    calls = [subprocess.Popen([sys.executable, "-m", "lorad", "-w", str(ws.root), "dataset",
                               "rules", "d", "--eval-prompt", f"prompt {i}", "--ban", f"w{i}"],
                              env=daemon_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for i in range(12)]
    db = ws.db_path.resolve()
    wait_for(lambda: all(_has_open(c.pid, db) for c in calls), timeout=60,
             message="every call to open the store")
    holder.execute("ROLLBACK")
    holder.close()
    errors = [c.communicate(timeout=120)[1] for c in calls]
    assert [c.returncode for c in calls] == [0] * 12, errors
    settings = datasets.get_by_id(conn, d.id).settings
    fault_report("12 concurrent `dataset rules` edits", counted="eval prompts added vs kept",
                 expected=12, observed=len(settings["eval_prompts"]))
    assert sorted(settings["eval_prompts"]) == sorted(f"prompt {i}" for i in range(12))
    assert sorted(settings["caption_rules"]["banned_words"]) == sorted(f"w{i}" for i in range(12))
