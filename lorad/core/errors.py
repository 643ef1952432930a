"""The one base class for errors whose message is the whole story for the user."""


class LoradError(Exception):
    """Expected, actionable: the CLI prints the message on one line; the TUI shows it as a toast."""
