"""Caption versions, lint, bulk edits and imports."""
