"""Task registry: a literal table from task name to ``"module:factory"``, imported lazily.

A task name that contains ``:`` is itself a ``"module:factory"`` path, so a user's own task
needs no registration: ``qmix train qmix my_package.my_env:make``.
"""

from __future__ import annotations

import importlib
from typing import Any

from qmix.envs.base import MultiAgentEnv

TASKS: dict[str, tuple[str, str]] = {
    # name: (factory, one-line description)
    "two_step": ("qmix.envs.matrix:make_two_step", "QMIX paper's two-step game (2 agents)"),
    "qtran_matrix": (
        "qmix.envs.matrix:make_qtran_game",
        "QTRAN's non-monotonic one-step game [[8,-12,-12],[-12,0,0],[-12,0,0]]",
    ),
    "climbing": ("qmix.envs.matrix:make_climbing_game", "climbing game, optimum 11"),
    "penalty": ("qmix.envs.matrix:make_penalty_game", "penalty-k game (env_args.k, default -100)"),
}


def resolve_factory(task: str) -> Any:
    """Return the factory callable for a task name or a ``"module:factory"`` path."""
    path = TASKS[task][0] if task in TASKS else task
    if ":" not in path:
        known = ", ".join(sorted(TASKS))
        raise ValueError(f"unknown task {task!r}: use one of {known}, or 'module:factory'")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"task {task!r}: cannot import module {module_name!r} ({err})") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"task {task!r}: module {module_name!r} has no {attr!r}") from err


def make_env(task: str, env_args: dict[str, Any] | None = None) -> MultiAgentEnv:
    """Build one environment of ``task`` with keyword arguments ``env_args``.

    Raises:
        ValueError: the task is unknown, cannot be imported, or rejects the arguments.
    """
    factory = resolve_factory(task)
    try:
        env = factory(**(env_args or {}))
    except TypeError as err:
        raise ValueError(f"task {task!r} rejected env_args {env_args!r}: {err}") from err
    return env
