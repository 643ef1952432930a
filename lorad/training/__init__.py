"""Runs on pods: the training job, the log parser, checkpoints, pods and their providers."""
