"""The agents' acting step and the runner's stepping loop in JAX, for simulators written in
JAX (SMAX).

A JAX simulator can run the agents' policy inside its own jitted step, and the runner's loop
around it (:func:`make_player`), so several collection steps are one compiled call instead of
a round trip through numpy and PyTorch for every action (see docs/implementation.md, "Acting
inside a JAX simulator"). The maths is that of
:meth:`qmix.networks.agents.AgentNetwork.step` on the weights of
:class:`qmix.types.AgentWeights`, then of the weights' action selector
(:mod:`qmix.policy.selectors`): :func:`epsilon_greedy` as
:func:`qmix.policy.exploration.epsilon_greedy`, or :func:`softmax_policy`, a sample of
:func:`qmix.policy.selectors.policy_probs`; ``tests/test_smax_acting.py`` and
``tests/test_selectors.py`` check that both paths give the same outputs and the same greedy
episodes. Exploration draws come from a JAX key seeded by the runner from the training RNG, so
they differ from the PyTorch path's draws.

Everything here is a pure function of arrays. The module imports ``jax``, so only the JAX
adapters import it, inside their constructors (``import qmix`` stays free of JAX).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qmix.envs.base import episode_ends
from qmix.types import AgentWeights

Params = dict[str, Any]  # name -> jnp array, as AgentWeights.arrays
Layout = tuple[tuple[str, tuple[int, ...]], ...]  # (name, shape) of each array, in order


def flatten(weights: AgentWeights) -> tuple[np.ndarray, Layout]:
    """All weights in one float32 vector (one host-to-device copy per call) and its layout."""
    layout = tuple((name, tuple(array.shape)) for name, array in weights.arrays.items())
    flat = np.concatenate([np.ravel(a).astype(np.float32) for a in weights.arrays.values()])
    return flat, layout


def unflatten(flat: Any, layout: Layout) -> Params:
    """The arrays of :func:`flatten` back from the vector, inside a traced function."""
    params, offset = {}, 0
    for name, shape in layout:
        size = math.prod(shape)
        params[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    return params


def _dense(x: Any, w: Any, b: Any) -> Any:
    """Per-agent affine map: ``x [B, N, D]``, ``w [C, K, D]``, ``b [C, K]`` -> ``[B, N, K]``.

    ``C = 1`` (shared parameters) is one matrix product; ``C = N`` applies agent ``n``'s
    weights to agent ``n``'s rows.
    """
    if w.shape[0] == 1:
        return x @ w[0].T + b[0]
    return jnp.einsum("bnd,nkd->bnk", x, w) + b


def q_step(params: Params, inputs: Any, hidden: Any, recurrent: bool) -> tuple[Any, Any]:
    """One acting step: ``inputs [B, N, I]``, ``hidden [B, N, H]`` -> ``q [B, N, A]``, hidden.

    Linear -> ReLU -> GRU cell (PyTorch's gate equations) -> Linear, or without the GRU for
    feed-forward agents (whose hidden state ``[B, N, 0]`` passes through).
    """
    z = jax.nn.relu(_dense(inputs, params["fc1_w"], params["fc1_b"]))  # [B, N, H]
    if recurrent:
        gi = _dense(z, params["gru_w_ih"], params["gru_b_ih"])  # [B, N, 3H]
        gh = _dense(hidden, params["gru_w_hh"], params["gru_b_hh"])  # [B, N, 3H]
        i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)  # [B, N, H] each
        h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
        reset = jax.nn.sigmoid(i_r + h_r)
        update = jax.nn.sigmoid(i_z + h_z)
        new = jnp.tanh(i_n + reset * h_n)
        hidden = (1.0 - update) * new + update * hidden  # [B, N, H]
        z = hidden
    return _dense(z, params["fc2_w"], params["fc2_b"]), hidden  # [B, N, A], [B, N, H]


def epsilon_greedy(key: Any, q: Any, avail: Any, epsilon: Any) -> Any:
    """With probability ``epsilon`` a uniform available action, else the greedy available one.

    ``q [B, N, A]``, ``avail [B, N, A]`` bool -> ``[B, N]`` int32. As the PyTorch path, one
    draw serves both choices: ``noise[..., 0]`` decides whether to explore, and the argmax of
    the other uniforms over the available actions is a uniformly random available action
    (one random-number call: each costs tens of microseconds on a CPU). An agent with no
    available action (an idle environment) gets action 0, which the runner discards.
    """
    greedy = jnp.argmax(jnp.where(avail, q, -jnp.inf), axis=-1)  # [B, N]
    noise = jax.random.uniform(key, (*avail.shape[:-1], avail.shape[-1] + 1))  # [B, N, A+1]
    uniform = jnp.argmax(jnp.where(avail, noise[..., 1:], -1.0), axis=-1)  # [B, N]
    return jnp.where(noise[..., 0] < epsilon, uniform, greedy).astype(jnp.int32)


def softmax_policy(key: Any, logits: Any, avail: Any, epsilon: Any) -> Any:
    """A sample of each agent's policy, the masked softmax of its logits with an epsilon floor.

    ``logits [B, N, A]``, ``avail [B, N, A]`` bool -> ``[B, N]`` int32, drawn from
    ``(1 - epsilon) softmax(logits over available actions) + epsilon / n_available`` on the
    available actions, as :func:`qmix.policy.selectors.policy_probs` (never an unavailable
    action). ``epsilon < 0`` (how the simulator encodes ``None``) asks for the greedy action,
    the argmax of the logits over the available actions. One random-number call: a categorical
    draw on the log-probabilities (Gumbel-max), ``-inf`` on unavailable actions. An agent with
    no available action (an idle environment) gets action 0, which the runner discards.
    """
    masked = jnp.where(avail, logits, -jnp.inf)  # [B, N, A]
    greedy = jnp.argmax(masked, axis=-1)  # [B, N]
    any_avail = jnp.any(avail, axis=-1, keepdims=True)  # [B, N, 1]
    soft = jax.nn.softmax(jnp.where(any_avail, masked, 0.0), axis=-1)  # [B, N, A]
    n_avail = jnp.maximum(jnp.sum(avail, axis=-1, keepdims=True), 1).astype(soft.dtype)
    floor = jnp.clip(epsilon, 0.0, 1.0)
    probs = (1.0 - floor) * soft + floor / n_avail  # [B, N, A]
    log_probs = jnp.where(avail, jnp.log(probs), -jnp.inf)  # [B, N, A]
    sample = jax.random.categorical(key, log_probs, axis=-1)  # [B, N]
    sample = jnp.where(any_avail[..., 0], sample, 0)
    return jnp.where(epsilon < 0, greedy, sample).astype(jnp.int32)


SELECTORS = {"epsilon_greedy": epsilon_greedy, "softmax": softmax_policy}
"""The action selectors :func:`act` compiles, by :class:`qmix.types.AgentWeights` name."""


def initial_state(b: int, n: int, h: int, a: int) -> tuple[Any, Any]:
    """Fresh acting state for ``B`` environments: ``(hidden [B, N, H], prev_onehot [B, N, A])``,
    the GRU state and the previous actions as one-hots (zeros at an episode's start)."""
    return jnp.zeros((b, n, h), jnp.float32), jnp.zeros((b, n, a), jnp.float32)


def exploration_counter(seed: int) -> np.ndarray:
    """``[2]`` uint32: a seed and the number of steps drawn from it. Step ``k`` explores with
    ``fold_in(PRNGKey(seed), k)``, so setting a new seed is a tiny host array, not a key."""
    return np.array([seed % 2**32, 0], np.uint32)


def act(
    flat_params: Any,
    agent_state: tuple[Any, Any],
    counter: Any,
    obs: Any,
    avail: Any,
    epsilon: Any,
    options: tuple[bool, bool, bool, str, Layout],
) -> tuple[Any, tuple[Any, Any], Any]:
    """Joint actions ``[B, N]`` for ``obs [B, N, O]`` and ``avail [B, N, A]``, the next acting
    state and exploration counter.

    ``options`` (static): recurrent, last action in the input, agent id in the input, the
    action selector's name (a key of :data:`SELECTORS`) and the weights' layout. The input is
    laid out as :meth:`AgentController.acting_inputs`: observation, one-hot previous action,
    one-hot agent index. ``epsilon`` is a float32 scalar; for ``softmax`` a negative one asks
    for greedy actions.
    """
    recurrent, last_action, agent_id, selector, layout = options
    hidden, prev = agent_state
    b, n, _ = obs.shape
    parts = [obs]
    if last_action:
        parts.append(prev)
    if agent_id:
        parts.append(jnp.broadcast_to(jnp.eye(n, dtype=obs.dtype), (b, n, n)))
    inputs = jnp.concatenate(parts, axis=-1)  # [B, N, I]
    params = unflatten(flat_params, layout)
    # outputs [B, N, A]: Q-values or policy logits, by the selector; hidden [B, N, H]
    outputs, hidden = q_step(params, inputs, hidden, recurrent)
    key = jax.random.fold_in(jax.random.PRNGKey(counter[0]), counter[1])
    actions = SELECTORS[selector](key, outputs, avail, epsilon)  # [B, N]
    prev = jax.nn.one_hot(actions, avail.shape[-1], dtype=jnp.float32)  # [B, N, A]
    return actions, (hidden, prev), counter.at[1].add(1)


def select(mask: Any, new: Any, old: Any) -> Any:
    """Per environment (leading axis ``B``), the leaves of ``new`` where ``mask [B]``, else
    those of ``old``."""

    def pick(x: Any, y: Any) -> Any:
        return jnp.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x, y)

    return jax.tree.map(pick, new, old)


def pack(*arrays: Any) -> Any:
    """One flat float32 vector, for one device-to-host copy per call (each copy costs tens of
    microseconds whatever its size)."""
    return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in arrays])


def make_player(
    start: Callable[..., Any], advance: Callable[..., Any], limit: int, steps: int
) -> Any:
    """The runner's stepping loop for a JAX simulator, ``steps`` batched steps per call.

    ``start(sim, agents, seeds [B], mask [B]) -> (sim, agents)`` starts episodes (zeroing the
    acting state); ``advance(sim, actions [B, N], active [B]) -> (sim, (reward, terminated,
    truncated, *extra))`` steps the active environments, each flag ``[B]``; ``sim[2]`` holds
    the views ``(obs [B, N, O], state [B, S], avail [B, N, A])``. The returned function

        play(sim, agents, counter, params, epsilon, active, t, queue, n_queue, count, options)
        -> (sim, agents, counter, record [steps, P])

    does what :class:`qmix.runner.EpisodeRunner` does for one step, ``steps`` times (a
    ``lax.scan``): idle environments take the next of the ``n_queue`` seeds of ``queue [Q]``
    in index order, the agents act (:func:`act`), the active environments step, and episodes
    end by :func:`qmix.envs.base.episode_ends`; once ``count`` episodes have ended, or no
    environment is active, the remaining steps do nothing (a ``lax.cond``, so they cost
    nothing either). Row ``k`` of ``record`` packs (:func:`pack`) started, stepped, t,
    actions, obs, state, avail, reward, terminated, truncated, the extra flags and the views
    after the step; rows not played are zeros.
    """

    def play(
        sim: Any,
        agents: Any,
        counter: Any,
        params: Any,
        epsilon: Any,
        active: Any,
        t: Any,
        queue: Any,
        n_queue: Any,
        count: Any,
        options: Any,
    ) -> tuple[Any, Any, Any, Any]:
        def one_step(carry: Any, starting: Any, seeds: Any) -> tuple[Any, Any, Any]:
            """Start, act and step once; returns the carry, the packed row and the number of
            episodes that ended."""
            sim, agents, counter, active, t = carry
            sim, agents = jax.lax.cond(
                jnp.any(starting), start, lambda s, g, q, m: (s, g), sim, agents, seeds, starting
            )
            obs, state, avail = sim[2]
            actions, new_agents, counter = act(
                params, agents, counter, obs, avail, epsilon, options
            )
            sim, (reward, terminated, truncated, *extra) = advance(sim, actions, active)
            agents = select(active, new_agents, agents)
            terminated, truncated = episode_ends(terminated, truncated, t + 1, limit)
            terminated, truncated = terminated & active, truncated & active
            ended = terminated | truncated  # [B]
            row = pack(
                starting,
                active,
                t,
                actions,
                obs,
                state,
                avail,
                reward,
                terminated,
                truncated,
                *extra,
                *sim[2],
            )
            t = jnp.where(ended, 0, jnp.where(active, t + 1, t))
            return (sim, agents, counter, active & ~ended, t), row, jnp.sum(ended)

        def body(loop: Any, _: Any) -> tuple[Any, Any]:
            (sim, agents, counter, active, t), taken, ended, stopped = loop
            go = ~stopped & (ended < count)
            idle = ~active
            rank = jnp.cumsum(idle) - 1  # [B] place of each idle environment in the line
            starting = go & idle & (taken + rank < n_queue)  # [B]
            seeds = queue[jnp.clip(taken + rank, 0, queue.shape[0] - 1)]  # [B]
            active = active | starting
            live = go & jnp.any(active)
            carry = (sim, agents, counter, active, t)
            row_shape = jax.eval_shape(one_step, carry, starting, seeds)[1]

            def skip(c: Any, m: Any, q: Any) -> tuple[Any, Any, Any]:
                return c, jnp.zeros(row_shape.shape, row_shape.dtype), jnp.zeros((), jnp.int32)

            carry, row, n_ended = jax.lax.cond(live, one_step, skip, carry, starting, seeds)
            return (carry, taken + jnp.sum(starting), ended + n_ended, ~live), row

        loop = ((sim, agents, counter, active, t), jnp.int32(0), jnp.int32(0), jnp.bool_(False))
        (carry, *_), record = jax.lax.scan(body, loop, None, length=steps)
        return carry[0], carry[1], carry[2], record  # record [steps, P]

    return play
