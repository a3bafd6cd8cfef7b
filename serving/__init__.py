"""dlwild serving."""
