"""The agents' acting step in JAX, for simulators written in JAX (SMAX).

A JAX simulator can run the agents' policy inside its own jitted step, so a collection step
is one compiled call instead of a round trip through numpy and PyTorch for every action
(see docs/implementation.md, "Acting inside a JAX simulator"). The maths is that of
:meth:`qmix.networks.agents.AgentNetwork.step` and :func:`qmix.policy.exploration.epsilon_greedy`
on the weights of :class:`qmix.types.AgentWeights`; ``tests/test_smax_acting.py`` checks that
both give the same Q-values and the same greedy episodes. Exploration draws come from a JAX
key seeded by the runner from the training RNG, so they differ from the PyTorch path's draws.

Everything here is a pure function of arrays. The module imports ``jax``, so only the JAX
adapters import it, inside their constructors (``import qmix`` stays free of JAX).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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
    options: tuple[bool, bool, bool, Layout],
) -> tuple[Any, tuple[Any, Any], Any]:
    """Joint actions ``[B, N]`` for ``obs [B, N, O]`` and ``avail [B, N, A]``, the next acting
    state and exploration counter.

    ``options`` (static): recurrent, last action in the input, agent id in the input, and the
    weights' layout. The input is laid out as :meth:`AgentController.acting_inputs`:
    observation, one-hot previous action, one-hot agent index.
    """
    recurrent, last_action, agent_id, layout = options
    hidden, prev = agent_state
    b, n, _ = obs.shape
    parts = [obs]
    if last_action:
        parts.append(prev)
    if agent_id:
        parts.append(jnp.broadcast_to(jnp.eye(n, dtype=obs.dtype), (b, n, n)))
    inputs = jnp.concatenate(parts, axis=-1)  # [B, N, I]
    params = unflatten(flat_params, layout)
    q, hidden = q_step(params, inputs, hidden, recurrent)  # [B, N, A], [B, N, H]
    key = jax.random.fold_in(jax.random.PRNGKey(counter[0]), counter[1])
    actions = epsilon_greedy(key, q, avail, epsilon)  # [B, N]
    prev = jax.nn.one_hot(actions, avail.shape[-1], dtype=jnp.float32)  # [B, N, A]
    return actions, (hidden, prev), counter.at[1].add(1)
