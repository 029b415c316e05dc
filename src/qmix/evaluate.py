"""Inspecting a trained model: learned Q_tot tables of tabular games, and their printing."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from qmix.envs.matrix import TabularGame
from qmix.networks.mixers import Mixer, MixerInput, QPLEXMixer, mixer_inputs
from qmix.policy.controller import AgentController


@torch.no_grad()
def q_tables(
    controller: AgentController,
    mixer: Mixer | None,
    game: TabularGame,
    mixer_input: MixerInput = "state",
    gamma: float = 0.99,
) -> dict[str, dict[str, Any]]:
    """Learned joint-action values in every reachable state of a tabular game.

    The agents are run along the state's path from the start (so recurrent agents see the
    history that leads there); then every joint action is pushed through the mixer.

    Returns:
        per state: ``q_tot`` (``[A] * N`` nested lists; the sum of agent Qs for IQL),
        ``agent_q`` (``[N][A]``) and ``true_q`` (the optimal values under ``gamma``).
    """
    info = game.env_info()
    n, a = info.n_agents, info.n_actions
    joints = torch.tensor(game.joint_actions())  # [J, N]
    optimal = game.optimal_q_tables(gamma)
    out: dict[str, dict[str, Any]] = {}
    for name, path in game.paths.items():
        game.reset()
        obs, states = [game.observations()], [game.state()]
        for joint in path:
            game.step(np.array(joint))
            obs.append(game.observations())
            states.append(game.state())
        obs_t = torch.from_numpy(np.stack(obs)).unsqueeze(0).to(controller.device)  # [1, L+1, N, O]
        actions = torch.tensor(path, dtype=torch.long).reshape(1, len(path), n)  # [1, L, N]
        inputs = controller.sequence_inputs(obs_t, actions.to(controller.device))  # [1, L+1, N, I]
        h0 = controller.agent.initial_hidden(1, controller.device)
        q, _ = controller.agent(inputs, h0)  # [1, L+1, N, A]
        agent_q = q[0, -1].cpu()  # [N, A]
        agent_qs = agent_q[torch.arange(n), joints]  # [J, N]
        if mixer is None:
            q_tot = agent_qs.sum(dim=-1)  # [J]
        else:
            state = torch.from_numpy(states[-1]).to(controller.device)  # [S]
            cond = mixer_inputs(mixer_input, obs_t[0, -1], state)  # [S']
            cond_j = cond.to(controller.device).expand(len(joints), -1).unsqueeze(0)  # [1, J, S']
            qs = agent_qs.to(controller.device).unsqueeze(0)  # [1, J, N]
            if isinstance(mixer, QPLEXMixer):  # its Q_tot also reads the joint actions
                best = agent_q.max(dim=-1).values.expand(len(joints), -1)  # [J, N]
                extra = (joints.unsqueeze(0), best.unsqueeze(0))  # [1, J, N] each
                q_tot = mixer(qs, cond_j, *(x.to(controller.device) for x in extra))[0].cpu()
            else:
                q_tot = mixer(qs, cond_j)[0].cpu()  # [J]
        out[name] = {
            "q_tot": q_tot.reshape([a] * n).tolist(),
            "agent_q": agent_q.tolist(),
            "true_q": optimal[name].tolist(),
        }
    return out


def format_tables(tables: dict[str, dict[str, Any]], greedy: dict[str, Any]) -> str:
    """Human-readable learned tables (rows: agent 1's action, columns: agent 2's)."""
    lines = []
    for name, entry in tables.items():
        table = np.asarray(entry["q_tot"])
        lines.append(f"state {name}: learned Q_tot (rows agent 1, cols agent 2)")
        for row in np.atleast_2d(table):
            lines.append("   " + " ".join(f"{v:8.2f}" for v in np.ravel(row)))
    joint = " -> ".join(str(tuple(j)) for j in greedy["joint_actions"])
    lines.append(f"greedy joint actions: {joint}; greedy return: {greedy['return']:.2f}")
    return "\n".join(lines)
