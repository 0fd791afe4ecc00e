"""Runs: the run folder, atomic writes, checkpoints, evaluation and resuming."""
