"""Datasets of clips and every ffmpeg call: the datasets table, clips, ingest, model profiles,
probing and conversion, analysis, output checks."""
