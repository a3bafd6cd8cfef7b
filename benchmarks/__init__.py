"""Benchmarks: scripts that print ratios measured in one run; benchmarks/README.md holds the latest figures."""
