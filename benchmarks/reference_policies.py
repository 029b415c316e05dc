"""Reference returns for a task: what standing still (action 0) and random actions score.

Run: ``.venv/bin/python benchmarks/reference_policies.py mpe_simple_spread [--episodes 100]``.
A learned policy should beat both; the figures put a task's learning curve in context. Works
for task presets whose environment is not vectorised (LBF, RWARE, MPE, matrix games).
"""

from __future__ import annotations

import argparse

import numpy as np

from qmix import make_config
from qmix.envs.registry import make_env


def play(task: str, policy: str, episodes: int) -> list[float]:
    """Team return of ``episodes`` episodes (seeds 0..episodes-1) under ``policy``."""
    cfg = make_config("qmix", task)
    env = make_env(cfg.env, cfg.env_args)
    limit = env.env_info().episode_limit
    rng = np.random.default_rng(0)
    returns = []
    for seed in range(episodes):
        env.reset(seed)
        total = 0.0
        for _ in range(limit):
            avail = env.avail_actions()  # [N, A]
            if policy == "noop":
                actions = np.zeros(len(avail), dtype=int)
            else:  # uniform over each agent's available actions
                actions = np.where(avail, rng.random(avail.shape), -1.0).argmax(-1)
            result = env.step(actions)
            total += result.reward
            if result.terminated or result.truncated:
                break
        returns.append(total)
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    for policy in ("noop", "random"):
        returns = play(args.task, policy, args.episodes)
        print(
            f"{args.task} {policy:6s}: mean team return {np.mean(returns):.2f} "
            f"± {np.std(returns):.2f} over {args.episodes} episodes"
        )


if __name__ == "__main__":
    main()
