"""A workspace: a folder holding `lorad.toml`, the database, media and downloads.

Found from --workspace, then LORAD_WORKSPACE, then by walking up from the current directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lorad.core import config as config_mod
from lorad.core.errors import LoradError

CONFIG_NAME = "lorad.toml"
DB_NAME = "lorad.db"
STATE_DIR = ".lorad"  # daemon lock, pid, log


class WorkspaceError(LoradError):
    pass


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def log_path(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def name(self) -> str:
        return self.config()["workspace"]["name"] or self.root.name

    def config(self) -> config_mod.Config:
        from lorad.core import plugins

        loaded = config_mod.load(self.config_path)
        plugins.use_config(loaded)  # trainers declared in it are found by name from here on
        return loaded

    def media_dir(self) -> Path:
        return self.root / self.config()["workspace"]["media_dir"]

    def downloads_dir(self) -> Path:
        return self.root / self.config()["workspace"]["downloads_dir"]

    def connect(self, *, create: bool = False):
        """The workspace's store. A missing lorad.db is an error (the workspace lost it), not
        an empty store made in its place; `init` creates it."""
        from lorad.core import store

        return store.connect(self.db_path, create=create)


def example_config() -> str:
    """The documented example config shipped with lorad (the repository's lorad.toml)."""
    return resources.files("lorad").joinpath("lorad.example.toml").read_text(encoding="utf-8")


def init(root: Path, *, name: str | None = None) -> Workspace:
    """Create a workspace (idempotent: an existing config is never overwritten)."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace(root)
    if not ws.config_path.exists():
        text = example_config()
        if name:
            text = text.replace('name = ""', f"name = {name!r}".replace("'", '"'), 1)
        ws.config_path.write_text(text, encoding="utf-8")
    cfg = ws.config()  # validate before creating anything else
    ws.state_dir.mkdir(exist_ok=True)
    (root / cfg["workspace"]["media_dir"]).mkdir(exist_ok=True)
    (root / cfg["workspace"]["downloads_dir"]).mkdir(exist_ok=True)
    ws.connect(create=True).close()
    return ws


def find(explicit: str | Path | None = None, cwd: Path | None = None) -> Workspace:
    if explicit:
        root = Path(explicit).expanduser()
        if not (root / CONFIG_NAME).exists():
            raise WorkspaceError(f"{root} is not a lorad workspace (no {CONFIG_NAME}); "
                                 f"create one with: lorad init {root}")
        return Workspace(root.resolve())
    env = os.environ.get("LORAD_WORKSPACE")
    if env:
        return find(env)
    here = (cwd or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).exists() and (candidate / DB_NAME).exists():
            return Workspace(candidate)
    raise WorkspaceError(
        "no lorad workspace here or above; create one with `lorad init DIR` "
        "or point at one with --workspace DIR or LORAD_WORKSPACE"
    )
