"""Screens, one module each; a screen's own widgets live beside it."""
