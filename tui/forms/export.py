"""Export: the preflight of a dataset shown as you choose the options, then a dataset version
written by the daemon (a `dataset.export` job, seen on the Jobs screen)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Select

from lorad.datasets import export, export_job, formats, preflight
from lorad.media import datasets, profiles

from .base import DatasetForm, FormError, chosen, labelled, number, queued

SHOWN_FINDINGS = 5


def report_text(report: preflight.Report) -> Text:
    errors = len(report.errors)
    warnings = len(report.findings) - errors
    text = Text(f"{report.clips} approved clip(s) -> {report.items} item(s), "
                f"{report.batches} batch(es) per epoch; ")
    text.append(f"{errors} error(s)", style="bold red" if errors else "green")
    text.append(f", {warnings} warning(s)", style="yellow" if warnings else "")
    if report.buckets:  # what the trainer makes of each clip (diffusion-pipe's frame buckets)
        counts = Counter(report.buckets.values())
        said = ", ".join(f"{b} frames: {n}" for b, n in sorted(
            (k, v) for k, v in counts.items() if k is not None))
        skipped = counts.get(None, 0)
        text.append(f"\nframe buckets: {said or 'none'}"
                    + (f"; {skipped} clip(s) skipped (too short)" if skipped else ""),
                    style="red" if skipped else "")
    for f in sorted(report.findings, key=lambda f: f.severity != "error")[:SHOWN_FINDINGS]:
        text.append("\n" + f.line(), style="red" if f.severity == "error" else "yellow")
    if len(report.findings) > SHOWN_FINDINGS:
        text.append(f"\n… {len(report.findings) - SHOWN_FINDINGS} more (`lorad dataset check`)",
                    style="dim")
    return text


class ExportForm(DatasetForm):
    PICK = "export-dataset"
    TITLE = "Export a dataset version"
    HINT = ("Freezes the approved clips and their captions into the folder the trainer reads; "
            "the same content gives the same version.")
    SUBMIT = "export"

    def fields(self) -> ComposeResult:
        yield from labelled("dataset", Select([], id="export-dataset"))
        yield from labelled("share held out for validation (0-0.5)",
                            Input(id="export-validation", type="number"))
        yield from labelled("for the trainer that reads (default: the profile's format)",
                            Select([], id="export-format", prompt="the profile's"))
        yield Checkbox("export despite preflight errors", id="export-force", compact=True)

    def load(self, conn) -> dict[str, datasets.Dataset]:
        # the formats' modules (and declared layouts) load here, in the worker
        self.format_names = formats.FORMATS.names()
        return super().load(conn)

    def fill(self, data) -> None:
        self.query_one("#export-format", Select).set_options(
            (name, name) for name in self.format_names)
        super().fill(data)

    def show_dataset(self, d: datasets.Dataset) -> None:
        self.query_one("#export-validation", Input).value = \
            f"{d.settings.get('validation', 0.0):g}"

    def values(self) -> dict[str, Any]:
        validation = number(self.query_one("#export-validation", Input).value,
                            "validation share") or 0.0
        if not 0 <= validation <= 0.5:
            raise FormError("validation share: between 0 and 0.5")
        return {"dataset": chosen(self.query_one("#export-dataset", Select)),
                "validation": validation,
                "format": chosen(self.query_one("#export-format", Select)),
                "force": self.query_one("#export-force", Checkbox).value}

    def _report(self, conn, values) -> tuple[datasets.Dataset, export.Options,
                                             preflight.Report]:
        d = datasets.get(conn, values["dataset"])
        options = export.Options(validation=values["validation"], format=values["format"])
        profile = profiles.get(d.profile, self.app.config)
        return d, options, preflight.check(conn, d, profile, options)

    def check(self, conn, values) -> Text | str:
        if values["dataset"] is None:
            return ""
        return report_text(self._report(conn, values)[2])

    def submit(self, conn, values) -> str:
        if values["dataset"] is None:
            raise FormError("no dataset to export")
        d, options, report = self._report(conn, values)
        refused = export.refusal(report, force=values["force"])
        if refused:
            raise FormError(refused.replace("(--force)", "(tick the box)"))
        job = export_job.queue(conn, d, options, force=values["force"])
        return queued(self.app, f"export of {d.name} queued (job {job}); the Jobs screen (0) "
                                "follows it")
