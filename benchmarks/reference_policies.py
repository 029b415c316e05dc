"""Reference scores for a task: what standing still (action 0) and random actions score.

Run: ``.venv/bin/python benchmarks/reference_policies.py mpe_simple_spread [--episodes 100]``
(a family's task: ``... reference_policies.py mpe --set env_args.scenario=simple_reference_v3``).
A learned policy should beat both; the figures put a task's learning curve in context. Works
for task presets whose environment is not vectorised (LBF, RWARE, MPE, matrix games) and for VMAS
(``reference_policies.py vmas --set env_args.scenario=balance``), whose episodes run as one batch.

For SMAX presets (``smax_3m``) it instead prints the win rate of a scripted focus-fire team:
every ally walks towards the centre of the living enemies until one is in range, then all
shoot the weakest enemy in range. It tells how much of a map a simple coordinated rule already wins.
"""

from __future__ import annotations

import argparse

import numpy as np

from qmix import make_config
from qmix.config import Config
from qmix.envs.registry import env_spec, make_env, make_vector_env


def choose(policy: str, avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Actions ``[..., N]`` from availabilities ``[..., N, A]``: action 0 (``noop``) or uniform
    over each agent's available actions (``random``)."""
    if policy == "noop":
        return np.zeros(avail.shape[:-1], dtype=int)
    return np.where(avail, rng.random(avail.shape), -1.0).argmax(-1)


def play_batched(cfg: Config, policy: str, episodes: int) -> list[float]:
    """Team return of ``episodes`` episodes of a vectorised simulator (VMAS), all at once."""
    envs = make_vector_env(cfg.env, cfg.env_args, episodes)
    rng = np.random.default_rng(0)
    active = np.ones(episodes, bool)
    envs.reset(list(range(episodes)), active)
    totals = np.zeros(episodes)
    while active.any():
        result = envs.step(choose(policy, envs.avail_actions(), rng), active)
        totals += np.where(active, result.reward, 0.0)
        active &= ~(result.terminated | result.truncated)
    envs.close()
    return totals.tolist()


def play(task: str, policy: str, episodes: int, overrides: list[str]) -> list[float]:
    """Team return of ``episodes`` episodes (seeds 0..episodes-1) under ``policy``."""
    cfg = make_config("qmix", task, overrides)
    if env_spec(cfg.env).vectorised:
        return play_batched(cfg, policy, episodes)
    env = make_env(cfg.env, cfg.env_args)
    limit = env.env_info().episode_limit
    rng = np.random.default_rng(0)
    returns = []
    for seed in range(episodes):
        env.reset(seed)
        total = 0.0
        for _ in range(limit):
            result = env.step(choose(policy, env.avail_actions(), rng))  # [N, A] -> [N]
            total += result.reward
            if result.terminated or result.truncated:
                break
        returns.append(total)
    env.close()
    return returns


def focus_fire_win_rate(task: str, episodes: int, overrides: list[str], batch: int = 32) -> float:
    """Win rate of the scripted focus-fire team on a SMAX preset over ``episodes`` battles."""
    cfg = make_config("qmix", task, [*overrides, f"n_envs={batch}"])
    envs = make_vector_env(cfg.env, cfg.env_args, batch)
    smax = envs._env  # type: ignore[attr-defined]  # JaxMARL's env: feature layout and sizes
    allies, moves = int(smax.num_allies), int(smax.num_movement_actions)
    enemies = int(smax.num_ally_actions) - moves
    width = len(smax.own_features)  # world state: ``width`` features per unit, allies first
    f = {name: smax.own_features.index(name) for name in ("health", "position_x", "position_y")}
    wins = []
    for first in range(0, episodes, batch):
        active = np.ones(batch, bool)
        envs.reset(list(range(first, first + batch)), active)
        while active.any():
            avail = envs.avail_actions()  # [B, N, A]: moves 0-3 (+y, +x, -y, -x), stop, attacks
            units = envs.states()[:, : (allies + enemies) * width]
            units = units.reshape(batch, allies + enemies, width)  # [B, U, F]
            health = units[:, allies:, f["health"]]  # [B, enemies]
            xy = units[:, :, [f["position_x"], f["position_y"]]]  # [B, U, 2]
            alive = health > 0
            centre = (xy[:, allies:] * alive[..., None]).sum(1) / np.maximum(
                alive.sum(1, keepdims=True), 1
            )  # [B, 2] centre of the living enemies
            dx, dy = np.moveaxis(centre[:, None, :] - xy[:, :allies], -1, 0)  # [B, N] each
            advance = np.where(
                np.abs(dx) > np.abs(dy), np.where(dx > 0, 1, 3), np.where(dy > 0, 0, 2)
            )
            in_range = avail[:, :, moves:]  # [B, N, enemies]
            target = np.where(in_range, health[:, None, :], np.inf).argmin(-1)  # [B, N]
            can_move = avail[:, :, : moves - 1].any(-1)  # [B, N]; dead units may only stop
            actions = np.where(
                in_range.any(-1), moves + target, np.where(can_move, advance, moves - 1)
            )
            result = envs.step(actions, active)
            for i in np.flatnonzero(active & (result.terminated | result.truncated)):
                wins.append(bool(result.infos[i]["battle_won"]))
            active &= ~(result.terminated | result.truncated)
    envs.close()
    return float(np.mean(wins[:episodes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="env_args etc.")
    args = parser.parse_args()
    label = " ".join([args.task, *args.set])
    if make_config("qmix", args.task, args.set).env == "smax":
        rate = focus_fire_win_rate(args.task, args.episodes, args.set)
        print(f"{label} focus fire: win rate {rate:.3f} over {args.episodes} battles")
        return
    for policy in ("noop", "random"):
        returns = play(args.task, policy, args.episodes, args.set)
        print(
            f"{label} {policy:6s}: mean team return {np.mean(returns):.2f} "
            f"± {np.std(returns):.2f} over {args.episodes} episodes"
        )


if __name__ == "__main__":
    main()
