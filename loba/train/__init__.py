"""The training step, loop, checkpoints and callbacks."""
