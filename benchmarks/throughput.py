"""Throughput: raw env steps/s, collection steps/s with the policy, full training steps/s.

Run: ``.venv/bin/python benchmarks/throughput.py [--tasks lbf_8x8_2p_2f_coop smax_3m]
[--batch 1 8 32] [--seconds 5]``. For each task preset and each number of parallel
environments ``B`` it prints:

- raw: random available actions stepped through the VectorEnv (no policy, no storage);
- collect: the runner with a QMIX agent choosing actions (epsilon 0.5) and filling episodes,
  called as training calls it (``B`` finished episodes per call, the rest carried over). On a
  simulator that acts for the agents (SMAX) the policy runs inside its compiled step, as in
  training, and each call into the simulator plays several steps (``steps_per_call``), while
  raw makes one call per step, as ``VectorEnv.step`` does: collection can then beat raw.
  "torch acting" times the same runner with the controller choosing every action, one step
  per call (``act_in_env=False``; "-" where the two are the same path);
- train: the whole training loop at the preset's settings with ``n_envs = B`` (collection,
  replay, the preset's updates per collection, target updates; no evaluation);

and the ratio collect / raw. One torch thread; medians of ``--repeats`` timed blocks.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qmix import make_config
from qmix.envs.base import AgentActingVectorEnv
from qmix.envs.registry import make_vector_env
from qmix.learners import build_learner
from qmix.runner import EpisodeRunner
from qmix.seeding import seed_stream
from qmix.trainer import train


def raw_rate(task: str, b: int, seconds: float) -> float:
    cfg = make_config("qmix", task, {"n_envs": b})
    envs = make_vector_env(cfg.env, cfg.env_args, b, cfg.env_workers)
    rng = np.random.default_rng(0)
    everyone = np.ones(b, bool)
    envs.reset(list(range(b)), everyone)
    # warm-up outside the timing: a JIT-compiled simulator compiles step and masked reset here
    envs.step(envs.avail_actions().argmax(-1), everyone)
    envs.reset(list(range(b)), everyone)
    limit = envs.env_info().episode_limit
    t = np.zeros(b, int)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        avail = envs.avail_actions()
        # random available action per agent: argmax of noise over the mask
        actions = np.where(avail, rng.random(avail.shape), -1.0).argmax(-1)
        result = envs.step(actions, everyone)
        steps += b
        t += 1
        done = result.terminated | result.truncated | (t >= limit)
        if done.any():
            envs.reset([int(s) for s in rng.integers(0, 2**31, b)], done)
            t[done] = 0
    rate = steps / (time.perf_counter() - start)
    envs.close()
    return rate


def acts_in_env(task: str) -> bool:
    """Whether the task's simulator runs the agents' acting step itself (SMAX)."""
    cfg = make_config("qmix", task, {"n_envs": 1})
    envs = make_vector_env(cfg.env, cfg.env_args, 1, cfg.env_workers)
    envs.close()
    return isinstance(envs, AgentActingVectorEnv)


def collect_rate(task: str, b: int, seconds: float, per_env: int, act_in_env: bool = True) -> float:
    cfg = make_config("qmix", task, {"n_envs": b})
    envs = make_vector_env(cfg.env, cfg.env_args, b, cfg.env_workers)
    learner = build_learner(cfg, envs.env_info())
    runner = EpisodeRunner(envs, learner.controller, act_in_env=act_in_env)
    gen = torch.Generator().manual_seed(0)
    seeds = seed_stream(0, 0, 0)
    runner.collect(b, seeds, 0.5, gen)  # warm-up (JIT, caches)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        # as in training: per_env * B finished episodes per call, unfinished ones carry over
        _, stats = runner.collect(b * per_env, seeds, 0.5, gen)
        steps += stats.env_steps
    rate = steps / (time.perf_counter() - start)
    envs.close()
    return rate


def train_rate(task: str, b: int, env_steps: int) -> float:
    cfg = make_config(
        "qmix",
        task,
        {"n_envs": b, "total_env_steps": env_steps, "test_episodes": 0, "seed": 0},
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(cfg, run_dir=Path(tmp), progress=False)
        return env_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["lbf_8x8_2p_2f_coop", "smax_3m"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=20_000)
    parser.add_argument("--episodes-per-env", type=int, default=1, help="per collection call")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        "| task | B | raw steps/s | collect steps/s | collect / raw | torch acting steps/s "
        "| torch acting / raw | train steps/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        in_env = acts_in_env(task)
        for b in args.batch:
            raw = statistics.median(raw_rate(task, b, args.seconds) for _ in range(args.repeats))
            col = statistics.median(
                collect_rate(task, b, args.seconds, args.episodes_per_env)
                for _ in range(args.repeats)
            )
            torch_cells = "- | -"
            if in_env:
                slow = statistics.median(
                    collect_rate(task, b, args.seconds, args.episodes_per_env, act_in_env=False)
                    for _ in range(args.repeats)
                )
                torch_cells = f"{slow:,.0f} | {slow / raw:.0%}"
            trn = train_rate(task, b, args.train_steps)
            print(
                f"| {task} | {b} | {raw:,.0f} | {col:,.0f} | {col / raw:.0%} | {torch_cells} "
                f"| {trn:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
