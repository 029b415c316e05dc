"""Why a trained run's greedy episodes fail: stuck, cycling or still searching at the limit.

Run: ``.venv/bin/python benchmarks/greedy_failures.py RUN_DIR [--episodes 512] [--best]``.

Plays greedy episodes with a run's final networks (``--best``: ``model_best.pt``) on the
evaluation seeds that ``qmix eval`` uses, and sorts the episodes that ran to the time limit by
the env's global state over their last ``--window`` steps:

- stuck: one state throughout. Deterministic agents that see the same input choose the same
  actions again, so a state whose greedy actions leave it unchanged (two LBF agents walking
  into each other, a load that needs a partner) is kept until the limit;
- cycling: a few states (at most 3) visited in turn;
- searching: anything else.

It prints the counts, the mean return, and the first few stuck episodes with their last joint
actions. Works for tasks whose environment is not vectorised (LBF, RWARE, MPE, matrix games).
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

import qmix
from qmix.envs.registry import make_env
from qmix.seeding import EVAL_STREAM, episode_seeds


def kind(states: list[bytes], window: int) -> str:
    """``stuck``, ``cycling`` or ``searching`` from the states of an episode's last steps."""
    distinct = len(set(states[-window:]))
    return "stuck" if distinct == 1 else "cycling" if distinct <= 3 else "searching"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--best", action="store_true", help="model_best.pt, not model.pt")
    parser.add_argument("--window", type=int, default=10, help="last steps looked at")
    parser.add_argument("--show", type=int, default=5, help="stuck episodes printed")
    parser.add_argument(
        "--trust-env",
        action="store_true",
        help="build a module:factory environment the run names (as qmix eval --trust-env)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = qmix.load(args.run_dir, best=args.best, trust_env=args.trust_env)
    cfg = run.config
    env = make_env(cfg.env, cfg.env_args)
    limit = env.env_info().episode_limit
    controller = run.learner.controller
    returns: list[float] = []
    kinds: Counter[str] = Counter()
    shown = 0
    for seed in episode_seeds(cfg.seed, EVAL_STREAM, 0, args.episodes):
        env.reset(seed=int(seed))
        controller.init_hidden(1)
        states: list[bytes] = []
        actions: list[tuple[int, ...]] = []
        total, steps, ended = 0.0, 0, False
        while steps < limit and not ended:
            obs = np.asarray(env.observations(), dtype=np.float32)  # [N, O]
            avail = np.asarray(env.avail_actions(), dtype=bool)  # [N, A]
            joint = controller.select_actions(obs[None], avail[None], None)[0]  # [N]
            states.append(np.asarray(env.state()).tobytes())
            actions.append(tuple(int(a) for a in joint))
            result = env.step(joint)
            total += float(result.reward)
            steps += 1
            ended = bool(result.terminated)
        returns.append(total)
        if ended:
            continue
        k = kind(states, args.window)
        kinds[k] += 1
        if k == "stuck" and shown < args.show:
            tail = 0
            while tail < len(states) and states[-1 - tail] == states[-1]:
                tail += 1
            print(
                f"  stuck: seed {seed}, return {total:.3f}, the last {tail} steps in one "
                f"state, last joint actions {actions[-3:]}"
            )
            shown += 1
    limited = sum(kinds.values())
    print(
        f"{args.run_dir}: {args.episodes} greedy episodes, mean return {np.mean(returns):.4f}; "
        f"{limited} ran to the {limit}-step limit: stuck {kinds['stuck']}, cycling "
        f"{kinds['cycling']}, searching {kinds['searching']} (last {args.window} steps)"
    )


if __name__ == "__main__":
    main()
