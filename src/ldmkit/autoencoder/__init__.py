"""ldmkit.autoencoder."""
