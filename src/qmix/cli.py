"""Command line: ``qmix train | eval | plot | summary | presets | check-env``.

Parses, then calls the public API. Exit status: 0 done; 2 a problem with the input, the files
or the machine (bad config, damaged checkpoint, disk full, run directory in use: one line on
stderr, nothing written or overwritten); 1 the run failed (the environment raised, hung or
returned garbage, or training diverged: one line, the traceback in the run's error.log);
130 / 143 stopped by SIGINT / SIGTERM after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from qmix.config import (
    FIELDS,
    LEARNER_KEYS,
    ConfigError,
    algorithm_presets,
    family_presets,
    field_doc,
    load_preset,
    make_config,
    parse_override,
    task_presets,
)
from qmix.files import METRICS_NAME, Q_TABLES_NAME, Q_TABLES_PLOT_NAME


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmix", description="Cooperative MARL by value factorisation (QMIX, VDN, IQL)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train ALGO on TASK, or resume a run",
        description="Train ALGO on TASK (`qmix train ALGO TASK [key=value ...]`), or continue "
        "a stopped run exactly (`qmix train --resume RUN_DIR [total_env_steps=N]`).",
    )
    train.add_argument(
        "words", nargs="*", metavar="ALGO TASK key=value", help="algorithm, task, overrides"
    )
    train.add_argument("--run-dir", help="write here instead of a new folder under runs_dir")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its checkpoint")
    train.add_argument(
        "--restart",
        metavar="RUN_DIR",
        help="start RUN_DIR again from scratch, in place (only a run stopped before its first "
        "checkpoint)",
    )
    train.add_argument(
        "--accept-config-change",
        action="store_true",
        help="--resume although config.yaml was edited (the change is recorded in metadata.json)",
    )
    _trust_flag(train)
    train.add_argument(
        "--seeds",
        metavar="SPEC",
        help="train several seeds in parallel processes, e.g. 0-4 or 0,3,7 (bounded by the "
        "cores); --run-dir is then the folder that holds one run directory per seed",
    )
    train.add_argument("--jobs", type=int, help="parallel processes for --seeds (default: cores)")
    train.add_argument("--quiet", action="store_true", help="no progress lines")
    ev = sub.add_parser(
        "eval",
        help="greedy evaluation of a trained run",
        description="Play greedy episodes with a run's trained agents; optionally render a GIF "
        "(LBF, RWARE, MPE) and, for matrix games, draw the learned Q_tot next to the payoff.",
    )
    ev.add_argument("run_dir", help="a run directory")
    ev.add_argument("--episodes", type=int, default=32, help="greedy episodes (default 32)")
    ev.add_argument(
        "--best", action="store_true", help="the networks of the best test (model_best.pt)"
    )
    ev.add_argument("--render", metavar="OUT.gif", help="write an animated GIF of one episode")
    ev.add_argument("--heatmap", metavar="OUT.png", help="matrix games: Q_tot heatmaps")
    _trust_flag(ev)
    plot = sub.add_parser(
        "plot",
        help="learning curves of several runs with 95%% bootstrap bands",
        description="Mean greedy test metric per algorithm over seeds, with a 95% bootstrap "
        "confidence band. RUN_DIRS may be run directories, folders holding them, or records "
        "of benchmarks/learn.py (benchmarks/recorded/NAME.json), e.g. a recorded algorithm "
        "beside fresh runs of another.",
    )
    plot.add_argument("-o", "--output", default="curves.png", help="PNG to write")
    summary = sub.add_parser(
        "summary",
        help="Markdown table of final, max and IQM test return per algorithm and task",
        description="Print a Markdown table: final, maximum and interquartile mean of the "
        "greedy test metric per (task, algorithm). RUN_DIRS may be run directories, folders "
        "holding them, or records of benchmarks/learn.py (benchmarks/recorded/NAME.json).",
    )
    for compare in (plot, summary):
        compare.add_argument(
            "run_dirs",
            nargs="+",
            metavar="RUN_DIR",
            help="a run directory, a folder of them, or a record NAME.json (with its NAME.md)",
        )
        compare.add_argument("--metric", default="test_return", help="test_return or test_win_rate")
        compare.add_argument(
            "--by",
            nargs="*",
            default=[],
            metavar="KEY",
            help="split by config keys (of config.yaml, or of a record's .md)",
        )
        compare.add_argument(
            "--until",
            type=int,
            default=None,
            metavar="ENV_STEPS",
            help="only the evaluations up to this many env steps (compare at a common budget)",
        )
    check = sub.add_parser(
        "check-env",
        help="check that an environment honours the MultiAgentEnv / VectorEnv contract",
        description="Play random episodes and check shapes, dtypes, masks, seeding, steps.",
    )
    check.add_argument("task", help="task preset, registered environment, or module:factory")
    check.add_argument("env_args", nargs="*", metavar="key=value", help="environment arguments")
    check.add_argument("--num-envs", type=int, default=2, help="B for vectorised environments")
    presets = sub.add_parser(
        "presets",
        help="list algorithms, families and tasks; or show where each value of a config comes from",
        description="Without arguments: the algorithm, family and task presets. With ALGO TASK "
        "[key=value ...]: the resolved config, each value with the layer that set it (defaults < "
        "algorithm < family < task < overrides).",
    )
    presets.add_argument("--keys", action="store_true", help="also list every config key")
    presets.add_argument(
        "resolve", nargs="*", metavar="ALGO TASK [key=value]", help="the config to explain"
    )
    return parser


def _trust_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-env",
        action="store_true",
        help="build a module:factory environment named by the run directory's config.yaml "
        "(that runs its code: only for run directories you trust)",
    )


def _presets(show_keys: bool) -> None:
    print("algorithms:")
    for name in algorithm_presets():
        print(f"  {name:14s} {load_preset('algos', name).get('description', '')}")
    print(
        "families (what a task of the family starts from; name one as the task with its env_args):"
    )
    for name in family_presets():
        print(f"  {name:14s} {load_preset('families', name).get('description', '')}")
    print("tasks:")
    for name in task_presets():
        print(f"  {name:14s} {load_preset('tasks', name).get('description', '')}")
    if show_keys:
        print("config keys (key=value; [q], [coma]: used by that learner only):")
        for name, f in FIELDS.items():
            default = f.default if not callable(f.default_factory) else f.default_factory()
            owners = "".join(f"[{k}] " for k, keys in LEARNER_KEYS.items() if name in keys)
            print(f"  {name:32s} {default!r:>10}  {owners}{field_doc(name)}")


def _explain(items: list[str]) -> int:
    """``qmix presets ALGO TASK [key=value ...]``: every key of the resolved config with the
    layer that set its value."""
    if len(items) < 2:
        raise ConfigError("qmix presets ALGO TASK [key=value ...] needs an algorithm and a task")
    sources: dict[str, str] = {}
    cfg = make_config(items[0], items[1], items[2:], sources=sources)
    print(f"{cfg.algo} on {cfg.task}: defaults < algorithm < family < task < overrides")
    width = max(len(key) for key in cfg.to_dict())
    for key, value in cfg.to_dict().items():
        if key in ("algo", "task"):
            continue
        origin = sources.get(key, "default")
        if key == "env_args" and value:
            parts = (f"{k} from {sources.get(f'env_args.{k}', origin)}" for k in value)
            origin = ", ".join(parts)
        print(f"  {key:{width}s} {value!r:24s} {origin}")
    return 0


def _check_env(task: str, items: list[str], num_envs: int) -> int:
    from qmix.envs.checker import EnvCheckError, check_env, check_vector_env
    from qmix.envs.registry import env_spec, make_env, make_vector_env

    try:
        env_args = dict(parse_override(item) for item in items)
        name = task
        if ":" not in task:  # the environment a run of this task trains on: its presets' args
            cfg = make_config("qmix", task, [f"env_args.{item}" for item in items])
            name, env_args = cfg.env, cfg.env_args
        if env_spec(name).vectorised:
            info = check_vector_env(make_vector_env(name, env_args, num_envs))
        else:
            info = check_env(make_env(name, env_args))
    except (ConfigError, EnvCheckError, ValueError) as err:
        print(f"qmix: check-env {task}: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the environment's own code failed: show where, then one line
        details = getattr(err, "details", "") or traceback.format_exc()
        print(details.rstrip(), file=sys.stderr)
        line = str(err).splitlines()[0] if str(err).strip() else ""
        print(
            f"qmix: check-env {task}: the environment failed: {type(err).__name__}: {line}",
            file=sys.stderr,
        )
        return 2
    print(f"{task}: OK  {info}")
    return 0


def parse_seeds(spec: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ranges and lists combine."""
    ranges: list[range] = []
    try:
        for part in spec.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if last < first:
                raise ValueError
            ranges.append(range(first, last + 1))
    except ValueError:
        raise ConfigError(f"--seeds {spec!r}: use a range like 0-4 or a list like 0,3,7") from None
    if sum(len(r) for r in ranges) > MAX_SEEDS:  # counted before a huge list is built
        raise ConfigError(f"--seeds {spec!r} names more than {MAX_SEEDS} seeds; split it")
    seeds = [seed for r in ranges for seed in r]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {spec!r} names a seed twice")
    return seeds


MAX_SEEDS = 1000  # one process and run directory each: more is a typo


def _train(args: argparse.Namespace) -> int:
    from qmix.trainer import restart, resume, train

    if args.resume and args.restart:
        raise ConfigError("--resume and --restart exclude each other: choose one")
    if args.restart:
        if args.words:
            raise ConfigError(f"--restart takes no other words, got {args.words[0]!r}")
        restart(Path(args.restart), progress=not args.quiet, trust_env=args.trust_env)
        return 0
    if args.resume:
        budget = None
        for item in args.words:
            key, value = parse_override(item)
            if key != "total_env_steps" or not isinstance(value, int):
                raise ConfigError(
                    f"--resume takes no overrides except total_env_steps=N, got {item!r}"
                )
            budget = value
        resume(
            Path(args.resume),
            progress=not args.quiet,
            total_env_steps=budget,
            trust_env=args.trust_env,
            accept_config_change=args.accept_config_change,
        )
        return 0
    if args.accept_config_change or args.trust_env:
        flag = "--accept-config-change" if args.accept_config_change else "--trust-env"
        raise ConfigError(f"{flag} is for --resume / --restart of an existing run directory")
    if len(args.words) < 2:
        raise ConfigError("usage: qmix train ALGO TASK [key=value ...] (or --resume RUN_DIR)")
    algo, task, overrides = args.words[0], args.words[1], list(args.words[2:])
    if args.seeds:
        return _train_seeds(algo, task, overrides, parse_seeds(args.seeds), args)
    cfg = make_config(algo, task, overrides)
    train(cfg, run_dir=Path(args.run_dir) if args.run_dir else None, progress=not args.quiet)
    return 0


def _train_seeds(
    algo: str, task: str, overrides: list[str], seeds: list[int], args: argparse.Namespace
) -> int:
    """One ``qmix train`` process per seed, at most ``--jobs`` (default: cores) at a time."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime

    from qmix.logging import read_metrics
    from qmix.trainer import run_name

    cfgs = [make_config(algo, task, [*overrides, f"seed={seed}"]) for seed in seeds]  # validate
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(seeds)))
    if args.run_dir:
        base = Path(args.run_dir)
    else:  # one new folder per invocation, holding a run directory per seed
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        prefix = run_name(cfgs[0]).removesuffix(f"seed{seeds[0]}")  # "<algo>_<task>_"
        base = Path(cfgs[0].runs_dir) / f"{prefix}seeds{args.seeds}_{stamp}"
    dirs = [base / run_name(cfg) for cfg in cfgs]
    taken = [d for d in dirs if d.exists()]
    if taken:
        raise ConfigError(f"{taken[0]} already exists: choose another --run-dir or remove it")
    print(f"training {len(seeds)} seeds, {jobs} at a time, into {base}/", flush=True)

    children: dict[int, subprocess.Popen[bytes]] = {}
    stopped: list[int] = []  # the signal that stops this parent, once one came
    guard = threading.Lock()

    def forward(signum: int, frame: object) -> None:
        """Pass SIGINT / SIGTERM to every child (each saves a checkpoint); start no more."""
        with guard:
            stopped.append(signum)
            for proc in children.values():
                proc.send_signal(signum)

    def one(seed: int, run_dir: Path) -> int:
        command = [sys.executable, "-m", "qmix", "train", algo, task, *overrides]
        command += [f"seed={seed}", "--run-dir", str(run_dir), "--quiet"]
        log = run_dir.with_name(run_dir.name + ".log")
        with guard:
            if stopped:
                print(f"  seed {seed}: not started", flush=True)
                return 128 + stopped[0]
            handle = log.open("w")
            # a session of its own: a terminal's Ctrl-C reaches the child once, through us
            proc = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
            children[seed] = proc
        with handle:
            code = proc.wait()
        with guard:
            children.pop(seed)
        done = (run_dir / METRICS_NAME).exists()
        try:
            rows = [r for r in read_metrics(run_dir) if "test_return" in r] if done else []
        except ValueError:
            rows = []
        last = f"final test return {rows[-1]['test_return']:.3f}" if rows else "no test rows"
        if code in (130, 143):
            status = f"stopped with a checkpoint (continue: qmix train --resume {run_dir})"
        else:
            status = "done" if code == 0 else f"FAILED (exit {code}, see {log})"
        print(f"  seed {seed}: {status}, {last} -> {run_dir}", flush=True)
        return code

    base.mkdir(parents=True, exist_ok=True)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ThreadPoolExecutor(jobs) as pool:
            codes = list(pool.map(one, seeds, dirs))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopped:
        print(f"stopped by {signal.Signals(stopped[0]).name}; children waited for", flush=True)
        return 128 + stopped[0]
    print(f"compare them: qmix plot {base} -o curves.png; qmix summary {base}")
    return 0 if all(code == 0 for code in codes) else 1


def _eval(args: argparse.Namespace) -> int:
    from qmix.run import load

    run = load(args.run_dir, best=args.best, trust_env=args.trust_env)
    result = run.evaluate(episodes=args.episodes)
    print(f"{run.run_dir}{' (best test)' if args.best else ''}: {result.summary()}")
    if args.render:
        from qmix.envs.registry import env_spec, make_env
        from qmix.render import record_episode, save_gif
        from qmix.run import require_trusted_env
        from qmix.seeding import EVAL_STREAM, episode_seeds

        cfg = run.config
        require_trusted_env(cfg, args.trust_env, run.run_dir)
        if env_spec(cfg.env).vectorised:
            raise ConfigError(f"--render cannot draw {cfg.env}: it works for LBF, RWARE and MPE")
        env = make_env(cfg.env, cfg.env_args)
        seed = episode_seeds(cfg.seed, EVAL_STREAM, 0, 1)[0]  # Run.evaluate's first episode
        try:
            frames, ret = record_episode(env, run.learner.controller, seed)
        finally:
            env.close()
        path = save_gif(frames, Path(args.render))
        print(f"episode with return {ret:.3f} ({len(frames) - 1} steps): {path}")
    tables_path = run.run_dir / Q_TABLES_NAME
    if args.heatmap:  # training already drew q_tables.png; this draws it where asked
        if not tables_path.exists():
            raise ConfigError("--heatmap is for matrix games (runs with q_tables.json)")
        import json

        from qmix.render import plot_q_tables

        title = f"{run.config.algo} on {run.config.task}, seed {run.config.seed}"
        png = plot_q_tables(json.loads(tables_path.read_text()), Path(args.heatmap), title=title)
        print(f"learned Q_tot next to the true values: {png}")
    elif (run.run_dir / Q_TABLES_PLOT_NAME).exists():
        print(f"learned Q_tot next to the true values: {run.run_dir / Q_TABLES_PLOT_NAME}")
    return 0


def _require(command: str, extras: dict[str, str]) -> None:
    """Refuse ``command`` in one line when a module it needs (``{module: extra}``) is missing."""
    import importlib.util

    for module, extra in extras.items():
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"qmix {command} needs {module}: pip install 'qmix[{extra}]'")


def _plot(args: argparse.Namespace) -> int:
    from qmix.compare import load_runs, plot_comparison

    _require("plot", {"matplotlib": "plots", "rliable": "stats"})

    runs = load_runs([Path(p) for p in args.run_dirs], split_by=args.by, until=args.until)
    print(f"plot: {plot_comparison(runs, Path(args.output), metric=args.metric)}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from qmix.compare import load_runs, summary_table

    _require("summary", {"rliable": "stats"})

    runs = load_runs([Path(p) for p in args.run_dirs], split_by=args.by, until=args.until)
    print(summary_table(runs, metric=args.metric), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qmix`` console script."""
    args = _parser().parse_args(argv)
    # The working directory is not put on the import path: a module:factory must be
    # importable (installed, or PYTHONPATH=. given by the user), never picked up by surprise.
    if args.command == "presets" and not args.resolve:
        try:
            _presets(args.keys)
        except BrokenPipeError:  # `qmix presets | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error
        return 0
    if args.command == "check-env":
        return _check_env(args.task, args.env_args, args.num_envs)
    from qmix.checkpoint import CheckpointError
    from qmix.envs.base import EnvError
    from qmix.envs.vector import EnvWorkerError
    from qmix.learners import DivergenceError
    from qmix.logging import tell
    from qmix.rundir import RunInterrupted, describe_os_error

    commands = {
        "train": _train,
        "eval": _eval,
        "plot": _plot,
        "summary": _summary,
        "presets": lambda a: _explain(a.resolve),
    }
    try:
        return commands[args.command](args)
    except RunInterrupted as stop:  # its reader may be gone: stopping must not fail on it
        tell(f"qmix: {stop}; continue it with: qmix train --resume {stop.run_dir}")
        return 128 + stop.signum
    except KeyboardInterrupt:
        kept = "; the last checkpoint is kept" if args.command == "train" else ""
        tell(f"qmix: stopped at once{kept}")
        return 130
    except (EnvError, DivergenceError) as err:
        where = getattr(err, "error_log", None)
        if isinstance(err, EnvError) and err.details and not isinstance(err, EnvWorkerError):
            print(err.details.rstrip(), file=sys.stderr)  # the environment's own traceback
        saved = f" (traceback in {where})" if where else ""
        print(f"qmix: error: {err}{saved}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, ValueError) as err:
        print(f"qmix: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"qmix: error: {describe_os_error(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
