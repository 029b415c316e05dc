"""YAML presets (package data): algorithms in ``algos/``, environment families in
``families/`` (what a task of that family starts from), tasks in ``tasks/``."""
