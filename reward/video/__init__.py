"""Video input/output and the differentiable views (frame sampling, fragments, resizing, normalisation)."""
