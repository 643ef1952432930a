"""The fault table's text: one line per scripted fault, the counts side by side."""

from __future__ import annotations


def render(rows: list[dict]) -> str:
    head = ["fault", "counted", "expected", "observed", "daemon", "ok"]
    body = [[r["fault"], r["counted"], str(r["expected"]), str(r["observed"]),
             {True: "alive", False: "DEAD", None: "-"}[r["daemon_alive"]],
             "yes" if r["ok"] else "NO"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    rows_text = ["| " + " | ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) + " |"
                 for b in body]
    bad = sum(not r["ok"] for r in rows)
    return "\n".join([line, rule, *rows_text,
                      f"{len(rows)} faults, {bad} with a count that does not match"])
