"""Training: the loop, its step, optimizers, control flags, diagnostics, policies and what a checkpoint holds."""
