"""The fault table: runs the scripted fault tests and prints, for each, the counts that matter
(paid requests vs generations, points printed vs stored, rows before vs after, the daemon alive
or not). Target: every count matches; zero duplicate paid requests, lost rows, silent deaths.

    .venv/bin/python bench/faults.py            # the table on stdout, exit 1 on a mismatch
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/faults", "tests/test_daemon.py::test_sigkill_mid_run_then_restart_runs_every_job"
         "_exactly_once", "tests/test_gen_jobs.py::test_daemon_killed_with_requests_in_flight_"
         "collects_every_result_once", "tests/test_training.py"]


def main() -> int:
    sys.path.insert(0, str(ROOT / "tests" / "support"))
    from fault_table import render

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "faults.json"
        env = {**os.environ, "LORAD_FAULT_TABLE": str(out)}
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              *TESTS], cwd=ROOT, env=env, capture_output=True, text=True)
        if not out.exists():
            print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
            return 1
        rows = json.loads(out.read_text())
    print(render(rows))
    print("pytest: " + (run.stdout.strip().splitlines() or ["?"])[-1])
    return 0 if run.returncode == 0 and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
