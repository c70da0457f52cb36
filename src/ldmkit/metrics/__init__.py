"""ldmkit.metrics."""
