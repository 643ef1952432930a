"""What a dataset becomes for a trainer: versions frozen by export, and the checks before."""
