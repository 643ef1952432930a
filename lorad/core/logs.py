"""Logging for the daemon: a rotating file in the workspace, with secrets redacted."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from lorad.core import plugins, secrets


def secret_values() -> list[str]:
    """The values of every secret any implementation declares (all of them loaded first; a
    plugin that does not load declares nothing, and redaction goes on)."""
    plugins.load_all(plugins.IMPLEMENTATIONS)
    return secrets.values()


class RedactSecrets(logging.Filter):
    """Replace the value of any declared secret wherever it appears in a record. It reads the
    declarations only: importing from a logging call could deadlock against a thread that logs
    while it imports (the daemon loads every implementation before it logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = secrets.values()
        if values:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            for value in values:
                message = message.replace(value, "[redacted]")
                if record.exc_text:
                    record.exc_text = record.exc_text.replace(value, "[redacted]")
            record.msg, record.args = message, None
        return True


def redact(text: str) -> str:
    """`text` without the value of any declared secret: for logs, job errors, the store."""
    for value in secret_values():
        text = text.replace(value, "[redacted]")
    return text


def setup(path: Path, *, max_bytes: int, backups: int, also_stderr: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a log line that cannot be written (a full disk) is dropped, not reported on stderr for
    # every line: the daemon goes on, and says what happened once it can write again
    logging.raiseExceptions = False
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                             encoding="utf-8")
    ]
    if also_stderr:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(RedactSecrets())
        root.addHandler(handler)
