"""The doctor: a check of a Ray cluster from the inside (`python -m workloads.doctor`)."""

from workloads.doctor.doctor import DoctorConfig, diagnose, main

__all__ = ["DoctorConfig", "diagnose", "main"]
