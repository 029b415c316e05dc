"""How much of a SMAX battle's outcome is chance: replay each start with other simulator keys.

Run: ``.venv/bin/python benchmarks/smax_luck.py RUN_DIR [--best] [--starts 256] [--replays 32]``.

A SMAX battle is random twice over: its start (unit positions, drawn from the reset key) and
its course (weapon cooldowns get a random deviation after every shot, and the heuristic enemy
breaks some choices at random, both drawn from the step keys). This script takes the trained
agents of ``RUN_DIR`` (greedy, as in ``qmix eval``), resets ``--starts`` battles exactly as
evaluation does (the evaluation seed stream), and plays each start ``--replays`` times with
different step keys. It prints the overall win rate, how many starts were won in every replay,
lost in every replay, or both won and lost, and the win rate the same agents would have if every
start went as its most frequent outcome. If most losses come from starts that the same agents
also win, the losses are mostly chance, not a start the team cannot handle.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from qmix.envs.registry import make_vector_env
from qmix.run import Run, load
from qmix.seeding import EVAL_STREAM, episode_seeds


def replay_wins(run: Run, starts: int, replays: int) -> np.ndarray:
    """``[starts, replays]`` bool: battle won, for each start and each replay of it."""
    import jax
    import jax.numpy as jnp

    cfg = run.config
    if cfg.env != "smax":
        raise SystemExit(f"{run.run_dir} is a {cfg.env} run; this script replays SMAX battles")
    envs = make_vector_env(cfg.env, cfg.env_args, 1)
    env: Any = envs._env  # type: ignore[attr-defined]  # JaxMARL's HeuristicEnemySMAX
    agents = list(env.agents)
    n_allies = int(env.num_allies)

    def views(state: Any) -> tuple[Any, Any]:
        """obs ``[N, O]`` and avail ``[N, A]`` of one battle, as the adapter builds them."""
        obs = env.get_obs(state)
        avail = env.get_avail_actions(state)
        return (
            jnp.stack([obs[a] for a in agents]).astype(jnp.float32),
            jnp.stack([avail[a] for a in agents]).astype(jnp.bool_),
        )

    def step_one(key: Any, state: Any, actions: Any) -> tuple[Any, ...]:
        key, step_key = jax.random.split(key)
        _, state, _, _, _ = env.step_env(step_key, state, dict(zip(agents, actions, strict=True)))
        alive = state.state.unit_alive  # [N + enemies], allies first
        allies_dead, enemies_dead = ~jnp.any(alive[:n_allies]), ~jnp.any(alive[n_allies:])
        done = allies_dead | enemies_dead | (state.state.step >= env.max_steps)
        return key, state, done, enemies_dead & ~allies_dead

    step = jax.jit(jax.vmap(step_one))
    batch_views = jax.jit(jax.vmap(views))
    controller = run.learner.controller
    wins = np.zeros((starts, replays), bool)
    for i, seed in enumerate(episode_seeds(cfg.seed, EVAL_STREAM, 0, starts)):
        # as the adapter: replay 0 is the battle `qmix eval` plays, the others change its keys
        reset_key, run_key = jax.random.split(jax.random.PRNGKey(seed % 2**32))
        _, state = env.reset(reset_key)
        states = jax.tree.map(lambda x: jnp.broadcast_to(x, (replays, *x.shape)), state)
        others = jax.random.split(jax.random.PRNGKey(seed % 2**32 + 1), replays - 1)
        keys = jnp.concatenate([run_key[None], others])
        done = np.zeros(replays, bool)
        controller.init_hidden(replays)
        while not done.all():
            obs, avail = jax.device_get(batch_views(states))
            actions = controller.select_actions(np.asarray(obs), np.asarray(avail), 0.0)
            keys, states, now_done, now_won = jax.device_get(
                step(keys, states, jnp.asarray(actions))
            )
            fresh = np.asarray(now_done) & ~done
            wins[i, fresh] = np.asarray(now_won)[fresh]
            done |= np.asarray(now_done)
    envs.close()
    return wins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--best", action="store_true", help="the best-test networks")
    parser.add_argument("--starts", type=int, default=256)
    parser.add_argument("--replays", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)

    run = load(args.run_dir, best=args.best)
    wins = replay_wins(run, args.starts, args.replays)  # [starts, replays]
    evaluated = run.evaluate(episodes=args.starts).wins
    if list(wins[:, 0]) != evaluated:  # the replays start from the battles qmix eval plays
        raise SystemExit("replay 0 differs from qmix eval's battles: the replay is not faithful")
    per_start = wins.mean(axis=1)  # [starts]
    always, never = per_start == 1.0, per_start == 0.0
    mixed = ~always & ~never
    losses = (~wins).sum()
    print(f"{args.run_dir}{' (best test)' if args.best else ''}: {wins.size} battles")
    print(f"  replay 0 of every start = qmix eval's battle (win rate {np.mean(evaluated):.3f})")
    print(f"  win rate {wins.mean():.3f} over {args.starts} starts x {args.replays} replays")
    print(
        f"  starts won in every replay {always.mean():.3f}, lost in every replay "
        f"{never.mean():.3f}, won and lost {mixed.mean():.3f}"
    )
    share = (~wins[mixed]).sum() / max(losses, 1)
    print(f"  losses in starts that the same agents also win: {share:.3f} of {losses}")
    print(f"  win rate if every start went its most frequent way: {(per_start > 0.5).mean():.3f}")


if __name__ == "__main__":
    main()
