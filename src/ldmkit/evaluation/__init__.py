"""L5: evaluation of trained checkpoints on held-out data."""
