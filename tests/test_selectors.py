"""Action selectors: the softmax policy never picks an unavailable action and samples
``policy_probs``, in PyTorch and in JAX; a COMA-style agent acts inside SMAX as in PyTorch;
the runner refuses a simulator that cannot act with the controller's selector."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import numpy as np
import pytest
import torch

from qmix.policy.selectors import SoftmaxPolicy, policy_probs

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
needs_smax = pytest.mark.skipif(
    importlib.util.find_spec("jaxmarl") is None, reason="needs jaxmarl (SMAX)"
)

DRAWS = 20_000
# three agents' logits [N, A] and masks: a spread-out policy, a peaked one with the best action
# unavailable, and a single available action
LOGITS = np.array(
    [[0.5, -1.0, 2.0, 0.0, 1.0], [3.0, 0.0, -2.0, 9.0, 1.0], [0.0, 1.0, 2.0, 3.0, 4.0]],
    np.float32,
)
AVAIL = np.array(
    [[True, True, True, False, True], [True, True, True, False, True], [False] * 4 + [True]]
)


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[64, 5, 6]`` with large values on unavailable actions, and random masks with at
    least one available action per agent."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, 5, 6, generator=gen) * 5  # [B, N, A]
    avail = torch.rand(64, 5, 6, generator=gen) < 0.3
    avail[..., 4] |= ~avail.any(-1)
    logits[~avail] = 1e9  # the best logits are unavailable
    return logits.numpy(), avail.numpy()


def _frequencies(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """``[N, A]`` empirical frequencies of each agent's actions ``[K, N]``."""
    return np.stack(
        [np.bincount(actions[:, i], minlength=n_actions) / len(actions) for i in range(3)]
    )


def _expected(epsilon: float) -> np.ndarray:
    """``[N, A]``: :func:`policy_probs` of the three agents."""
    return policy_probs(torch.from_numpy(LOGITS), torch.from_numpy(AVAIL), epsilon).numpy()


def _chosen_available(actions: np.ndarray, avail: np.ndarray) -> bool:
    return bool(np.take_along_axis(avail, actions[..., None].astype(np.int64), -1).all())


# -- policy_probs and SoftmaxPolicy (PyTorch) ---------------------------------------------------
def test_policy_probs_sum_to_one_over_available_actions() -> None:
    logits, avail = _random_case(0)
    avail[0, 0] = False  # a padding row: no available action
    for epsilon in (0.0, 0.3, 1.0):
        probs = policy_probs(torch.from_numpy(logits), torch.from_numpy(avail), epsilon)
        sums = probs.sum(-1)  # [B, N]
        assert torch.allclose(sums[torch.from_numpy(avail.any(-1))], torch.tensor(1.0))
        assert float(sums[0, 0]) == 0.0
        assert bool((probs[torch.from_numpy(~avail)] == 0).all())
        assert bool((probs >= 0).all())
    uniform = policy_probs(torch.from_numpy(LOGITS), torch.from_numpy(AVAIL), 1.0)
    expected = AVAIL / AVAIL.sum(-1, keepdims=True)
    np.testing.assert_allclose(uniform.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_softmax_policy_never_picks_unavailable(epsilon: float) -> None:
    logits, avail = _random_case(1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        actions = SoftmaxPolicy().select(logits, avail, epsilon, gen)
        assert actions.shape == (64, 5)
        assert _chosen_available(actions, avail)


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_softmax_policy_samples_policy_probs(epsilon: float) -> None:
    gen = torch.Generator().manual_seed(2)
    logits = np.broadcast_to(LOGITS, (DRAWS, *LOGITS.shape)).copy()  # [K, N, A]
    avail = np.broadcast_to(AVAIL, (DRAWS, *AVAIL.shape)).copy()
    actions = SoftmaxPolicy().select(logits, avail, epsilon, gen)  # [K, N]
    freq = _frequencies(actions, LOGITS.shape[-1])
    assert np.abs(freq - _expected(epsilon)).max() < 0.02
    assert freq[~AVAIL].sum() == 0


def test_softmax_policy_epsilon_none_is_the_masked_argmax() -> None:
    logits, avail = _random_case(3)
    expected = np.where(avail, logits, -np.inf).argmax(-1)
    selector = SoftmaxPolicy()
    assert np.array_equal(selector.select(logits, avail, None), expected)
    assert not selector.draws(None) and selector.draws(0.0) and selector.draws(0.5)


# -- softmax_policy (JAX) ------------------------------------------------------------------------
@needs_jax
@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_jax_softmax_policy_never_picks_unavailable(epsilon: float) -> None:
    import jax

    from qmix.envs.jax_agents import softmax_policy

    logits, avail = _random_case(4)
    for i in range(20):
        actions = np.asarray(
            softmax_policy(jax.random.PRNGKey(i), logits, avail, np.float32(epsilon))
        )
        assert actions.shape == (64, 5) and actions.dtype == np.int32
        assert _chosen_available(actions, avail)


@needs_jax
@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_jax_softmax_policy_samples_policy_probs(epsilon: float) -> None:
    import jax

    from qmix.envs.jax_agents import softmax_policy

    logits = np.broadcast_to(LOGITS, (DRAWS, *LOGITS.shape))  # [K, N, A]
    avail = np.broadcast_to(AVAIL, (DRAWS, *AVAIL.shape))
    key = jax.random.PRNGKey(7)
    actions = np.asarray(softmax_policy(key, logits, avail, np.float32(epsilon)))  # [K, N]
    freq = _frequencies(actions, LOGITS.shape[-1])
    assert np.abs(freq - _expected(epsilon)).max() < 0.02
    assert freq[~AVAIL].sum() == 0


@needs_jax
def test_jax_softmax_policy_negative_epsilon_is_greedy_and_idle_agents_take_0() -> None:
    import jax

    from qmix.envs.jax_agents import softmax_policy

    logits, avail = _random_case(5)
    expected = np.where(avail, logits, -np.inf).argmax(-1)
    for i in range(3):
        greedy = softmax_policy(jax.random.PRNGKey(i), logits, avail, np.float32(-1.0))
        assert np.array_equal(np.asarray(greedy), expected)
    avail[0] = False  # an idle environment: no agent has an available action
    for epsilon in (-1.0, 0.0, 0.5):
        actions = np.asarray(softmax_policy(jax.random.PRNGKey(0), logits, avail, epsilon))
        assert (actions[0] == 0).all()
        assert _chosen_available(actions[1:], avail[1:])


# -- SMAX: a softmax controller acting inside the simulator ------------------------------------
_ENVS: dict[bool, Any] = {}  # one compiled SMAX per acting path, shared by the tests


def _softmax_runner(act_in_env: bool) -> Any:
    """A runner with a fresh softmax-policy agent (same initial weights every time) on a
    shared 3-env SMAX 3m."""
    from qmix.envs.smax import make_smax
    from qmix.networks.agents import AgentNetwork
    from qmix.policy.controller import AgentController, agent_input_dim
    from qmix.runner import EpisodeRunner

    envs = _ENVS.get(act_in_env)
    if envs is None:
        envs = _ENVS[act_in_env] = make_smax("3m", num_envs=3)
    info = envs.env_info()
    torch.manual_seed(1)
    dim = agent_input_dim(info.obs_dim, info.n_actions, info.n_agents, True, True)
    agent = AgentNetwork(dim, info.n_actions, info.n_agents, 32, recurrent=True)
    controller = AgentController(
        agent, info.n_actions, last_action=True, agent_id=True, selector=SoftmaxPolicy()
    )
    return EpisodeRunner(envs, controller, act_in_env=act_in_env)


def _chosen_avail(batch: Any) -> torch.Tensor:
    """``[K, T, N]`` bool: each action taken was available (read over filled steps)."""
    return batch.avail_actions[:, :-1].gather(-1, batch.actions.unsqueeze(-1))[..., 0]


@needs_smax
def test_softmax_greedy_episodes_are_the_same_on_both_acting_paths() -> None:
    in_env, in_torch = _softmax_runner(True), _softmax_runner(False)
    assert in_env.acting_env is not None and in_torch.acting_env is None
    seeds = list(range(7))  # more episodes than environments
    first, stats = in_env.run(seeds, None)
    second, _ = in_torch.run(seeds, None)
    for name in ("obs", "state", "avail_actions", "actions", "reward", "filled", "terminated"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert len(set(stats.lengths)) > 1
    assert len(torch.unique(first.actions[first.filled])) > 2  # the greedy choice varies


@needs_smax
def test_softmax_exploration_in_smax_is_available_and_follows_the_generator() -> None:
    seeds = list(range(6))
    runner = _softmax_runner(True)
    batch, _ = runner.run(seeds, 0.5, torch.Generator().manual_seed(5))
    assert bool(_chosen_avail(batch)[batch.filled].all())  # never an unavailable action
    again, _ = _softmax_runner(True).run(seeds, 0.5, torch.Generator().manual_seed(5))
    other, _ = _softmax_runner(True).run(seeds, 0.5, torch.Generator().manual_seed(6))
    assert torch.equal(again.actions, batch.actions)
    assert not torch.equal(other.actions, batch.actions)
    # epsilon 0 still samples the policy (only None is greedy): a fresh agent's policy is
    # spread out, so the first step's samples differ from its argmax
    greedy, _ = _softmax_runner(True).run(seeds, None)
    sampled, _ = _softmax_runner(True).run(seeds, 0.0, torch.Generator().manual_seed(0))
    assert bool(_chosen_avail(sampled)[sampled.filled].all())
    assert not torch.equal(greedy.actions[:, 0], sampled.actions[:, 0])


@needs_smax
def test_runner_refuses_a_simulator_without_the_controllers_selector() -> None:
    in_env = _softmax_runner(True)  # builds the shared env
    envs = _ENVS[True]
    envs.selectors = frozenset({"epsilon_greedy"})
    try:
        with pytest.raises(ValueError, match="epsilon_greedy") as refused:
            _softmax_runner(True)
    finally:
        envs.selectors = frozenset({"epsilon_greedy", "softmax"})
    message = str(refused.value)
    assert "softmax" in message and "\n" not in message
    assert "act_in_env=False" in message
    # SMAX itself refuses weights with a selector it does not compile
    weights = dataclasses.replace(in_env.controller.agent_weights(), selector="boltzmann")
    with pytest.raises(ValueError, match="not boltzmann"):
        envs.load_agents(weights, 0)
