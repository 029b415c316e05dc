"""Command line: ``qmix train | presets``. Parses, then calls the public API.

Configuration problems print one line to stderr and exit with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qmix.config import (
    FIELDS,
    ConfigError,
    algorithm_presets,
    field_doc,
    load_preset,
    make_config,
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qmix`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "presets":
        _presets(args.keys)
        return 0
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
