"""Built-in tabular games: the QMIX two-step game and one-step matrix games.

Every game here is deterministic and fully observed: each agent observes the one-hot of the
current state, and so does the global state. The observation after the last step is all zeros
(it is never bootstrapped from: the episode is ``terminated``).

Games know their own state graph, so a trained model can be asked for its ``Q_tot`` table in
every state (:func:`qmix.evaluate.q_tables`) and compared with the true optimal values
(:meth:`TabularGame.optimal_q_tables`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from qmix.types import EnvInfo, StepResult

JointAction = tuple[int, ...]
Transition = Callable[[JointAction], "str | None"]


class TabularGame:
    """A deterministic multi-agent game over a small acyclic graph of named states.

    Args:
        states: state names; the first is the start state.
        payoffs: per state, the team reward of every joint action, array of shape ``[A] * N``.
        transitions: per state, a function of the joint action giving the next state's name,
            or ``None`` when the episode ends. States absent from it end after one step.
    """

    def __init__(
        self,
        states: Sequence[str],
        payoffs: Mapping[str, np.ndarray],
        transitions: Mapping[str, Transition] | None = None,
    ) -> None:
        if not states:
            raise ValueError("a TabularGame needs at least one state")
        self.states = tuple(states)
        self.payoffs = {name: np.asarray(payoffs[name], dtype=np.float64) for name in self.states}
        shapes = {p.shape for p in self.payoffs.values()}
        if len(shapes) != 1:
            raise ValueError(f"every payoff table needs the same shape, got {sorted(shapes)}")
        shape = shapes.pop()
        if len(set(shape)) != 1:
            raise ValueError(f"every agent needs the same number of actions, got shape {shape}")
        self.transitions = dict(transitions or {})
        self.n_agents = len(shape)
        self.n_actions = shape[0]
        self.paths = self._paths_from_start()
        self.episode_limit = max(len(path) for path in self.paths.values()) + 1
        self._current: str | None = self.states[0]

    # -- structure -------------------------------------------------------------------------
    def joint_actions(self) -> list[JointAction]:
        """Every joint action, in row-major order of the payoff tables."""
        return list(itertools.product(range(self.n_actions), repeat=self.n_agents))

    def _next(self, state: str, joint: JointAction) -> str | None:
        move = self.transitions.get(state)
        return None if move is None else move(joint)

    def _paths_from_start(self) -> dict[str, list[JointAction]]:
        """Breadth-first search: per reachable state, the first joint-action path reaching it."""
        paths: dict[str, list[JointAction]] = {self.states[0]: []}
        frontier = [self.states[0]]
        while frontier:
            state = frontier.pop(0)
            for joint in self.joint_actions():
                nxt = self._next(state, joint)
                if nxt is None or nxt in paths:
                    continue
                if nxt not in self.payoffs:
                    raise ValueError(f"transition from {state!r} leads to unknown state {nxt!r}")
                paths[nxt] = [*paths[state], joint]
                frontier.append(nxt)
        return paths

    def optimal_q_tables(self, gamma: float) -> dict[str, np.ndarray]:
        """True optimal joint-action values ``Q*(s, u)`` per state, arrays of shape ``[A] * N``."""
        values: dict[str, np.ndarray] = {}

        def q_table(state: str) -> np.ndarray:
            if state not in values:
                table = self.payoffs[state].copy()
                for joint in self.joint_actions():
                    nxt = self._next(state, joint)
                    if nxt is not None:
                        table[joint] += gamma * q_table(nxt).max()
                values[state] = table
            return values[state]

        return {name: q_table(name) for name in self.paths}

    # -- MultiAgentEnv -----------------------------------------------------------------------
    def env_info(self) -> EnvInfo:
        """Sizes: one-hot observations and state over the named states."""
        return EnvInfo(
            n_agents=self.n_agents,
            n_actions=self.n_actions,
            obs_dim=len(self.states),
            state_dim=len(self.states),
            episode_limit=self.episode_limit,
        )

    def reset(self, seed: int | None = None) -> None:
        """Go back to the start state (the game is deterministic; the seed is unused)."""
        del seed
        self._current = self.states[0]

    def state(self) -> np.ndarray:
        """One-hot of the current state ``[S]``; zeros after the episode ended."""
        one_hot = np.zeros(len(self.states), dtype=np.float32)
        if self._current is not None:
            one_hot[self.states.index(self._current)] = 1.0
        return one_hot

    def observations(self) -> np.ndarray:
        """Every agent sees the full one-hot state, ``[N, O]``."""
        return np.tile(self.state(), (self.n_agents, 1))

    def avail_actions(self) -> np.ndarray:
        """All actions are always available, ``[N, A]``."""
        return np.ones((self.n_agents, self.n_actions), dtype=bool)

    def step(self, actions: np.ndarray) -> StepResult:
        """Pay the current state's payoff for ``actions [N]`` and move along the graph."""
        if self._current is None:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        joint = tuple(int(a) for a in np.asarray(actions).reshape(-1))
        if len(joint) != self.n_agents or not all(0 <= a < self.n_actions for a in joint):
            raise ValueError(
                f"expected {self.n_agents} actions in [0, {self.n_actions}), got {list(joint)}"
            )
        reward = float(self.payoffs[self._current][joint])
        self._current = self._next(self._current, joint)
        return StepResult(reward=reward, terminated=self._current is None, truncated=False)

    def close(self) -> None:
        """Nothing to release."""


def make_two_step() -> TabularGame:
    """The two-step game of the QMIX paper (Rashid et al. 2018, section 5 / figure 3).

    In state 1 agent 1's action picks the next state (action 0 -> 2A, action 1 -> 2B) and agent
    2's action does nothing; reward 0. State 2A pays 7 for every joint action; state 2B pays
    ``[[0, 1], [1, 8]]``. The episode ends after the second step.
    """
    return TabularGame(
        states=("1", "2A", "2B"),
        payoffs={
            "1": np.zeros((2, 2)),
            "2A": np.full((2, 2), 7.0),
            "2B": np.array([[0.0, 1.0], [1.0, 8.0]]),
        },
        transitions={"1": lambda joint: "2A" if joint[0] == 0 else "2B"},
    )


def make_matrix_game(payoff: Sequence[Sequence[float]]) -> TabularGame:
    """A one-step two-agent game with the given payoff matrix ``[A, A]``."""
    table = np.asarray(payoff, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"expected a square payoff matrix, got shape {table.shape}")
    return TabularGame(states=("s",), payoffs={"s": table})


def make_qtran_game() -> TabularGame:
    """QTRAN's non-monotonic game (Son et al. 2019): no monotonic mixer represents its 8."""
    return make_matrix_game([[8, -12, -12], [-12, 0, 0], [-12, 0, 0]])


def make_climbing_game() -> TabularGame:
    """The climbing game (Claus & Boutilier 1998): optimum 11 guarded by -30 penalties."""
    return make_matrix_game([[11, -30, 0], [-30, 7, 0], [0, 6, 5]])


def make_penalty_game(k: float = -100.0) -> TabularGame:
    """The penalty game (Claus & Boutilier 1998) with miscoordination penalty ``k <= 0``."""
    if k > 0:
        raise ValueError(f"penalty k must be <= 0, got {k}")
    return make_matrix_game([[k, 0, 10], [0, 2, 0], [10, 0, k]])
