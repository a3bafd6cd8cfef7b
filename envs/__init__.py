"""dlwild envs."""
