"""Generations, sweeps, ratings and the LoRA registry; generation services."""
