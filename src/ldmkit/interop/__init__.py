"""L4: weights people already have (diffusers, CompVis) mapped onto ldmkit's modules."""
