"""Training: build the components, the loop, evaluation, checkpoints, runtime, signals, progress."""
