"""Sweeps: a run's settings tuned with Optuna, each trial an ordinary run folder under runs/<study>/.

    storage   where the study lives (runs/<study>/study.db by default) and how it is opened
    view      read_sweep: the study as typed rows, for the CLI and the console (never writes)
    control   stop a sweep, stop or prune one trial, from another process
"""
