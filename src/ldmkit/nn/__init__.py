"""ldmkit.nn."""
