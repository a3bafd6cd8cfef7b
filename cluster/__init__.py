"""dlwild cluster."""
