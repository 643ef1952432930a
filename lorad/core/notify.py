"""Notifications for what a person walks away from: a run finished, failed or stopped (a budget
stop too), a sweep or a chain done, a pod stopped, the daemon stopped on an error. Sent by the daemon through
apprise (ntfy, Slack, Discord, Telegram, email, ... : https://github.com/caronc/apprise/wiki).

The URLs carry tokens, so they come from the environment only: `$LORAD_NOTIFY_URLS`, space- or
comma-separated, never the config or the store. `[notify] events` chooses what is sent. A
notification that cannot be delivered is logged (without its URL) and nothing else stops."""

from __future__ import annotations

import logging
import os
import re

from lorad.core.config import Config, ConfigError

log = logging.getLogger("lorad.notify")

URLS_ENV = "LORAD_NOTIFY_URLS"
EVENTS = {
    "run_finished": "a training run finished",
    "run_failed": "a training run failed",
    "run_stopped": "a training run was stopped (by you, or by its budget)",
    "generations_done": "every generation of a sweep, or every shot of a chain, is done",
    "pod_idle": "a pod lorad may power off is idle and will be stopped after its idle time",
    "pod_stopped": "a pod was stopped or terminated (its idle policy, or by request)",
    "daemon_error": "the daemon stopped on an unexpected error",
}


def urls() -> list[str]:
    return [u for u in re.split(r"[\s,]+", os.environ.get(URLS_ENV, "")) if u]


def check(config: Config) -> None:
    """Unknown event names in `[notify] events` are refused with the known ones."""
    unknown = sorted(set(config["notify"]["events"]) - set(EVENTS))
    if unknown:
        raise ConfigError(f"{config.path}: notify.events: unknown {', '.join(unknown)} (known: "
                          f"{', '.join(EVENTS)})")


def soon(config: Config, event: str, title: str, body: str) -> None:
    """Send from the daemon's event loop without waiting, on a worker thread (call it from a
    job's success step: the send starts once that step has returned)."""
    import asyncio

    if not _wanted(config, event):
        return
    loop = asyncio.get_running_loop()
    task = loop.create_task(asyncio.to_thread(send, config, event, title, body))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_pending: set = set()  # tasks kept alive until they end


def _wanted(config: Config, event: str) -> bool:
    return event in config["notify"]["events"] and bool(urls())


def send(config: Config, event: str, title: str, body: str) -> bool:
    """Send one notification if the event is wanted and URLs are set; True when delivered.
    Blocking (network): call it from a worker thread."""
    if not _wanted(config, event):
        return False
    targets = urls()
    import apprise

    # apprise logs the URLs it cannot use, tokens and all: keep its own logger out of ours
    logging.getLogger("apprise").setLevel(logging.CRITICAL)
    notifier = apprise.Apprise()
    added = sum(1 for url in targets if notifier.add(url))
    if added < len(targets):
        log.warning("%d of the URLs in $%s are not ones apprise knows: check them",
                    len(targets) - added, URLS_ENV)
    try:
        ok = bool(added) and bool(notifier.notify(title=title, body=body))
    except Exception as exc:  # noqa: BLE001 - a notification never stops the daemon
        log.warning("notification %r not sent: %s", event, exc.__class__.__name__)
        return False
    if not ok:
        log.warning("notification %r not delivered to every URL in $%s", event, URLS_ENV)
    return ok
