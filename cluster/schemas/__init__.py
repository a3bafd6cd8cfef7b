"""Strict schemas, written by us, for the cluster configs the project ships (see cluster/validate.py)."""
