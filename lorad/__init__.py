"""lorad: the LoRA lifecycle in one place (daemon, CLI and TUI over one SQLite store)."""

__version__ = "0.1.0"
