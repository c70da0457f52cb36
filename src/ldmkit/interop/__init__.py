"""L6 (beside training): checkpoints people already have (Stable Diffusion and CompVis files,
diffusers folders) read into ldmkit's modules, and ldmkit models written in those formats."""
