"""lorad's one error hierarchy.

Every error whose message is the whole story for the user derives from :class:`LoradError`:
the CLI prints it on one line, the TUI shows it in its error modal, and the daemon records it on
the job without a traceback. Below it, the job framework's two verdicts:

- :class:`TransientError`: worth retrying later (a network drop, a busy remote, a rate limit);
- :class:`PermanentError`: retrying will not help; the message says what to fix.

A plain :class:`LoradError` raised in a job counts as permanent. Clients of outside systems
(fal, RunPod, SSH, the Hub) raise these and import nothing else from the job framework.
"""

from __future__ import annotations

import errno
import sqlite3


class LoradError(Exception):
    """Expected and actionable: the message says what happened and what to do."""


class TransientError(LoradError):
    """Retry later with backoff: the cause may go away by itself."""


class PermanentError(LoradError):
    """Retrying will not help; the message tells the person what to fix."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth retrying: lorad's transient errors, the standard library's
    connection and timeout errors raised by code lorad does not own, and a store that cannot
    be written right now (a full disk, a lock held too long)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True  # a full disk: space comes back
    return isinstance(exc, (TransientError, ConnectionError, TimeoutError,
                            sqlite3.OperationalError))
