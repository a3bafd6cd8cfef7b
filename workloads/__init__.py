"""dlwild workloads: one package per Ray job, each started with `python -m workloads.<name>`."""
