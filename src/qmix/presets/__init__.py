"""YAML presets (package data): algorithms in ``algos/``, tasks in ``tasks/``."""
