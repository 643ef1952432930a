"""LoradApp: header, footer, number-key screens, `?` help, command palette, live store watch."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from lorad.core import daemon, fmt, store
from lorad.core.workspace import Workspace

from .keys import keyed
from .screens.base import StoreScreen
from .screens.captions import CaptionsScreen
from .screens.clips import ClipsScreen
from .screens.generations import GenerationsScreen
from .screens.help import HelpScreen
from .screens.jobs import JobsScreen
from .screens.pods import PodsScreen
from .screens.training import TrainingScreen
from .watcher import DaemonChanged, StoreChanged, StoreWatcher


@dataclass(frozen=True)
class Section:
    key: str
    mode: str
    title: str
    screen: type[Screen]


# Number keys: 1 Clips, then Captions, Training, Generations, Pods as they arrive; 0 Jobs.
SECTIONS: list[Section] = [
    Section("1", "clips", "Clips", ClipsScreen),
    Section("2", "captions", "Captions", CaptionsScreen),
    Section("3", "training", "Training", TrainingScreen),
    Section("4", "generations", "Generations", GenerationsScreen),
    Section("5", "pods", "Pods", PodsScreen),
    Section("0", "jobs", "Jobs", JobsScreen),
]


def binding_ids() -> set[str]:
    """Every binding id of the app, its screens, dialogs and widgets (what `[tui.keys]` may
    name)."""
    from .forms import base as form_base
    from .forms import menu
    from .screens import (
        captions,
        chain_row,
        clips,
        confirm,
        generations,
        help,
        jobs,
        player,
        pods,
        publish,
        retake,
        samples,
        sweep_grid,
        training,
    )
    from .widgets import rowlist

    found = {b.id for b in LoradApp.BINDINGS if b.id}
    for module in (captions, chain_row, clips, confirm, generations, help, jobs, player, pods,
                   publish, retake, samples, sweep_grid, training, rowlist, form_base, menu):
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                found.update(b.id for b in getattr(value, "BINDINGS", []) if b.id)
    return found


class LoradApp(App):
    CSS_PATH = "app.tcss"
    MODES = {s.mode: s.screen for s in SECTIONS}
    BINDINGS = keyed([
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("N", "setup", "Setup"),
        Binding("D", "start_daemon", "Start daemon", show=False),
        Binding("q", "quit", "Quit", show=False),  # in help and the palette: room for the rest
        *[Binding(s.key, f"switch_mode('{s.mode}')", s.title, show=False) for s in SECTIONS],
    ])

    def __init__(self, ws: Workspace, *, refresh_interval: float | None = None):
        super().__init__()
        self.ws = ws
        config = ws.config()
        self.config = config  # read once: forms read profiles and defaults from it
        self.settings = config["tui"]  # read once: no file reads on the event loop after this
        self.refresh_interval = refresh_interval or self.settings["refresh_interval"]
        self.title = f"lorad — {ws.name}"
        self.sub_title = "daemon: checking"
        self.daemon_status: daemon.DaemonStatus | None = None
        self.training_note = ""  # "truck 236/960": the runs training now, for the header
        self.watcher = StoreWatcher(ws, self, self.refresh_interval)

    def on_mount(self) -> None:
        self._apply_keymap()
        self.switch_mode(SECTIONS[0].mode)
        self.watcher.start()
        self.set_interval(1.0, self._show_header)  # the uptime moves, whatever else does
        self._read_training()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A store connection for one worker's read or write (the event loop only writes
        with it as the app closes)."""
        conn = store.connect(self.ws.db_path, migrate=False)
        try:
            yield conn
        finally:
            conn.close()

    def _apply_keymap(self) -> None:
        """`[tui.keys]`: binding ids to keys; an id no screen has is said, not ignored."""
        from .keys import keymap

        wanted, problems = keymap(self.settings["keys"])
        known = binding_ids()
        problems += [f"tui.keys.{name}: no key has that id (known: {', '.join(sorted(known))})"
                     for name in wanted if name not in known]
        self.set_keymap({k: v for k, v in wanted.items() if k in known})
        for problem in problems:
            self.notify(problem, severity="warning", timeout=15)

    def on_unmount(self) -> None:
        self.watcher.stop()

    def on_store_changed(self, _message: StoreChanged) -> None:
        if not self.screen_stack:  # a change that arrives as the app closes its screens
            return
        if isinstance(self.screen, StoreScreen):
            self.screen.store_changed()
        self._read_training()

    def on_daemon_changed(self, message: DaemonChanged) -> None:
        self.daemon_status = message.status
        self._show_header()

    @work(thread=True, exclusive=True, group="header")
    def _read_training(self) -> None:
        from lorad.training import runs

        with self.connection() as conn:
            running = [r for r in runs.list_all(conn) if r.state == "running"]
        note = "  ".join(
            f"{r.name} {(r.step or 0) + r.step_offset}/{(r.total_steps or 0) + r.step_offset}"
            if r.total_steps else f"{r.name} {r.stage or 'starting'}" for r in running[:2])
        if len(running) > 2:
            note += f" +{len(running) - 2}"
        self.call_from_thread(self._set_training_note, note)

    def _set_training_note(self, note: str) -> None:
        self.training_note = note
        self._show_header()

    def _show_header(self) -> None:
        status = self.daemon_status
        if status is None:
            text = "daemon: checking"
        elif status.running:
            text = f"daemon: up {fmt.duration(status.uptime)}"
        else:
            text = "daemon: stopped — D starts it"
        self.sub_title = f"{text} — training {self.training_note}" if self.training_note \
            else text

    def play_media(self, path: str, title: str = "") -> None:
        """Play a clip: in a player window where a display exists (or the player set), else
        inside the terminal (over SSH a window never appears, and suspending the TUI for it
        left the person with a blank screen)."""
        from lorad.media import player

        from .screens.player import PlayerScreen

        setting = self.settings["player"]
        if player.is_audio(path):  # a track: heard, with no window to open
            try:
                self.play(player.audio_command(setting, path))
            except player.PlayerError as exc:
                self.notify(str(exc), severity="error")
            return
        if player.in_terminal(setting):
            self.push_screen(PlayerScreen(path, title))
            return
        try:
            args = player.command(setting, path)
        except player.PlayerError as exc:
            self.notify(f"{exc}; playing inside the terminal instead", severity="warning")
            self.push_screen(PlayerScreen(path, title))
            return
        self.play(args)

    def play(self, args: list[str]) -> None:
        """Play media in an external player: in the terminal (suspending the TUI) when we can,
        detached otherwise (a GUI player, or no real terminal)."""
        import subprocess

        from textual.app import SuspendNotSupported

        try:
            with self.suspend():
                subprocess.run(args, check=False)
        except SuspendNotSupported:
            subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)

    async def action_quit(self) -> None:
        """Quitting while a caption is being edited asks first (the text is kept as a draft
        either way)."""
        screen = self.screen
        if isinstance(screen, CaptionsScreen) and screen.unsaved():
            from .screens.confirm import ConfirmScreen

            async def chosen(key: str | None) -> None:
                if key == "y":
                    screen.save_now()
                if key in ("y", "n"):
                    self.exit()

            self.push_screen(ConfirmScreen("This caption has changes not saved yet.",
                                           {"y": "save and quit",
                                            "n": "quit (kept as a draft)"}), chosen)
            return
        self.exit()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    # -- setup --------------------------------------------------------------------------
    def current_dataset(self) -> str | None:
        """The dataset the screen shows (a form's default)."""
        return getattr(self.screen, "dataset_name", None)

    def action_setup(self) -> None:
        from .forms.menu import SetupMenu

        if isinstance(self.screen, SetupMenu) or not isinstance(self.screen, StoreScreen):
            return
        down = self.daemon_status is not None and not self.daemon_status.running
        self.push_screen(SetupMenu(down), self.open_setup)

    def open_setup(self, action_id: str | None) -> None:
        from .forms.menu import ACTIONS

        if action_id == "daemon":
            self.action_start_daemon()
            return
        for action in ACTIONS:
            if action.id == action_id:
                self.push_screen(action.form(self.current_dataset()), self._after_form)

    def _after_form(self, message: str | None) -> None:
        if message and isinstance(self.screen, StoreScreen):
            self.screen.reload()

    def action_start_daemon(self) -> None:
        if self.daemon_status is not None and self.daemon_status.running:
            self.notify(f"the daemon runs already (up {fmt.duration(self.daemon_status.uptime)})")
            return
        self.notify("starting the daemon…")
        self._start_daemon()

    @work(thread=True, exclusive=True, group="daemon-start")
    def _start_daemon(self) -> None:
        try:
            status = daemon.start(self.ws)
        except Exception as exc:  # noqa: BLE001 - said to the person, the TUI goes on
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=15)
            return
        self.call_from_thread(self.notify, f"daemon started (pid {status.pid})")
        self.post_message(DaemonChanged(status))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        from .forms.menu import ACTIONS

        for action in ACTIONS:
            yield SystemCommand(f"Setup: {action.title}", "a form (N lists them)",
                                lambda a=action.id: self.open_setup(a))
        yield SystemCommand("Setup: Start the daemon", "runs the jobs (key D)",
                            self.action_start_daemon)
        for section in SECTIONS:
            yield SystemCommand(f"Go to {section.title}", f"key {section.key}",
                                lambda mode=section.mode: self.switch_mode(mode))
        for active in screen.active_bindings.values():
            binding = active.binding
            if binding.description and active.node is screen:
                yield SystemCommand(
                    f"{getattr(screen, 'LABEL', '')}: {binding.description}".strip(": "),
                    f"key {self.get_key_display(binding)}",
                    lambda action=binding.action: self.run_action(action, screen))
