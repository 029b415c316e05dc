"""Command line: ``qmix train | presets``. Parses, then calls the public API.

Configuration problems print one line to stderr and exit with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from qmix.config import (
    FIELDS,
    ConfigError,
    algorithm_presets,
    field_doc,
    load_preset,
    make_config,
    parse_override,
    task_presets,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmix", description="Cooperative MARL by value factorisation (QMIX, VDN, IQL)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train ALGO on TASK", description="Train ALGO on TASK.")
    train.add_argument("algo", help="algorithm preset (see `qmix presets`)")
    train.add_argument("task", help="task preset, or module:factory for your own task")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    train.add_argument("--run-dir", help="write here instead of a new folder under runs_dir")
    train.add_argument("--quiet", action="store_true", help="no progress lines")
    check = sub.add_parser(
        "check-env",
        help="check that an environment honours the MultiAgentEnv / VectorEnv contract",
        description="Play random episodes and check shapes, dtypes, masks, seeding, steps.",
    )
    check.add_argument("task", help="task preset, registered environment, or module:factory")
    check.add_argument("env_args", nargs="*", metavar="key=value", help="environment arguments")
    check.add_argument("--num-envs", type=int, default=2, help="B for vectorised environments")
    presets = sub.add_parser("presets", help="list algorithms, tasks and config keys")
    presets.add_argument("--keys", action="store_true", help="also list every config key")
    return parser


def _presets(show_keys: bool) -> None:
    print("algorithms:")
    for name in algorithm_presets():
        print(f"  {name:14s} {load_preset('algos', name).get('description', '')}")
    print("tasks:")
    for name in task_presets():
        print(f"  {name:14s} {load_preset('tasks', name).get('description', '')}")
    if show_keys:
        print("config keys (key=value):")
        for name, f in FIELDS.items():
            default = f.default if not callable(f.default_factory) else f.default_factory()
            print(f"  {name:32s} {default!r:>10}  {field_doc(name)}")


def _check_env(task: str, items: list[str], num_envs: int) -> int:
    from qmix.envs.checker import EnvCheckError, check_env, check_vector_env
    from qmix.envs.registry import ENVS, env_spec, make_env, make_vector_env

    try:
        env_args = dict(parse_override(item) for item in items)
        name = task
        if task not in ENVS and ":" not in task:  # a task preset names its environment
            preset = load_preset("tasks", task)
            name = preset.get("env", task)
            env_args = {**preset.get("env_args", {}), **env_args}
        if env_spec(name).vectorised:
            info = check_vector_env(make_vector_env(name, env_args, num_envs))
        else:
            info = check_env(make_env(name, env_args))
    except (ConfigError, EnvCheckError, ValueError) as err:
        print(f"qmix: check-env {task}: {err}", file=sys.stderr)
        return 2
    print(f"{task}: OK  {info}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qmix`` console script."""
    args = _parser().parse_args(argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a user's module:factory in the working directory
    if args.command == "presets":
        _presets(args.keys)
        return 0
    if args.command == "check-env":
        return _check_env(args.task, args.env_args, args.num_envs)
    from qmix.trainer import train

    try:
        cfg = make_config(args.algo, args.task, list(args.overrides))
        train(cfg, run_dir=Path(args.run_dir) if args.run_dir else None, progress=not args.quiet)
    except ConfigError as err:
        print(f"qmix: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qmix: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
