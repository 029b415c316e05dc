"""The pure loss maths: chosen values, targets, double Q, TD(lambda), masking."""

from __future__ import annotations

import torch

from qmix.learners.maths import masked_td_loss, td_lambda_targets
from qmix.learners.q import chosen_action_values, greedy_target_values


def test_chosen_action_values_gathers_taken_actions() -> None:
    q = torch.arange(24, dtype=torch.float32).reshape(1, 2, 3, 4)  # [B, T, N, A]
    actions = torch.tensor([[[0, 1, 3], [2, 2, 0]]])  # [B, T, N]
    out = chosen_action_values(q, actions)
    assert out.tolist() == [[[0.0, 5.0, 11.0], [14.0, 18.0, 20.0]]]


def test_greedy_target_values_respect_availability_and_padding() -> None:
    target_q = torch.tensor([[[[1.0, 9.0, 3.0]], [[5.0, 6.0, 7.0]]]])  # [1, 2, 1, 3]
    avail = torch.tensor([[[[True, False, True]], [[False, False, False]]]])
    out = greedy_target_values(target_q, avail)
    assert out.tolist() == [[[3.0], [0.0]]]  # 9 is unavailable; no action at all -> 0


def test_double_q_selects_with_online_and_values_with_target() -> None:
    target_q = torch.tensor([[[[1.0, 9.0, 3.0]]]])  # [1, 1, 1, 3]
    online_q = torch.tensor([[[[5.0, 0.0, 4.0]]]])
    avail = torch.ones(1, 1, 1, 3, dtype=torch.bool)
    assert greedy_target_values(target_q, avail).item() == 9.0
    assert greedy_target_values(target_q, avail, online_q).item() == 1.0  # online picks action 0


def test_one_step_td_targets_bootstrap_unless_terminated() -> None:
    reward = torch.tensor([[1.0, 2.0, 3.0]])
    terminated = torch.tensor([[False, False, True]])
    mask = torch.ones(1, 3)
    next_values = torch.tensor([[10.0, 20.0, 30.0]])
    out = td_lambda_targets(reward, terminated, mask, next_values, gamma=0.5, td_lambda=0.0)
    assert torch.allclose(out, torch.tensor([[1 + 5.0, 2 + 10.0, 3.0]]))


def test_truncated_bootstraps_and_terminated_does_not() -> None:
    reward = torch.tensor([[1.0], [1.0]])
    mask = torch.ones(2, 1)
    next_values = torch.tensor([[4.0], [4.0]])
    terminated = torch.tensor([[False], [True]])  # row 0 truncated (time limit), row 1 terminal
    for lam in (0.0, 0.6, 1.0):
        out = td_lambda_targets(reward, terminated, mask, next_values, 0.9, lam)
        assert torch.allclose(out, torch.tensor([[1 + 0.9 * 4.0], [1.0]]))


def test_td_lambda_one_is_monte_carlo_and_intermediate_matches_recursion() -> None:
    reward = torch.tensor([[1.0, 2.0, 3.0, 0.0]])
    terminated = torch.tensor([[False, False, True, False]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # last slot is padding
    next_values = torch.tensor([[10.0, 20.0, 99.0, 99.0]])
    g = 0.9
    mc = td_lambda_targets(reward, terminated, mask, next_values, g, 1.0)
    assert torch.allclose(mc[0, :3], torch.tensor([1 + g * 2 + g * g * 3, 2 + g * 3, 3.0]))
    lam = 0.5
    out = td_lambda_targets(reward, terminated, mask, next_values, g, lam)
    g2 = 3.0
    g1 = 2 + g * ((1 - lam) * 20.0 + lam * g2)
    g0 = 1 + g * ((1 - lam) * 10.0 + lam * g1)
    assert torch.allclose(out[0, :3], torch.tensor([g0, g1, g2]))


def test_td_lambda_broadcasts_over_agents() -> None:
    reward = torch.tensor([[1.0, 2.0]])
    terminated = torch.tensor([[False, True]])
    mask = torch.ones(1, 2)
    next_values = torch.tensor([[[10.0, 0.0], [5.0, 5.0]]])  # [B, T, N]
    out = td_lambda_targets(reward, terminated, mask, next_values, 1.0, 0.0)
    assert torch.allclose(out, torch.tensor([[[11.0, 1.0], [2.0, 2.0]]]))


def test_masked_loss_ignores_padding_values() -> None:
    chosen = torch.tensor([[1.0, 2.0, 777.0]])
    targets = torch.tensor([[0.0, 4.0, -5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss = masked_td_loss(chosen, targets, mask)
    assert torch.isclose(loss, torch.tensor((1.0 + 4.0) / 2))
    chosen2, targets2 = chosen.clone(), targets.clone()
    chosen2[0, 2], targets2[0, 2] = float("nan"), float("inf")
    assert torch.isclose(masked_td_loss(chosen2, targets2, mask), loss)


def test_masked_loss_gradient_is_zero_on_padding() -> None:
    chosen = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    loss = masked_td_loss(chosen, torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 0.0]]))
    (grad,) = torch.autograd.grad(loss, chosen)
    assert grad.tolist() == [[2.0, 0.0, 0.0]]


def _reference_td_lambda(reward, terminated, mask, next_values, gamma, lam):
    """The backward recursion written out step by step (the definition)."""
    b, t = reward.shape
    out = torch.zeros_like(next_values)
    for i in range(b):
        following = None
        for k in reversed(range(t)):
            v = next_values[i, k]
            next_is_real = k + 1 < t and bool(mask[i, k + 1])
            tail = following if next_is_real else v
            cont = 0.0 if terminated[i, k] else 1.0
            out[i, k] = reward[i, k] + gamma * cont * ((1 - lam) * v + lam * tail)
            following = out[i, k]
    return out


def test_td_lambda_matches_the_recursion_on_random_episodes() -> None:
    gen = torch.Generator().manual_seed(0)
    b, t = 6, 9
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    mask = (torch.arange(t) < lengths[:, None]).float()
    terminated = torch.zeros(b, t, dtype=torch.bool)
    ends = torch.rand(b, generator=gen) < 0.5  # the others are truncated
    terminated[torch.arange(b)[ends], lengths[ends] - 1] = True
    reward = torch.randn(b, t, generator=gen)
    for next_values in (torch.randn(b, t, generator=gen), torch.randn(b, t, 3, generator=gen)):
        for lam in (0.0, 0.3, 0.6, 1.0):
            fast = td_lambda_targets(reward, terminated, mask, next_values, 0.9, lam)
            slow = _reference_td_lambda(reward, terminated, mask, next_values, 0.9, lam)
            m = mask if next_values.dim() == 2 else mask[..., None]
            assert torch.allclose(fast * m, slow * m, atol=1e-5)


def test_a_batch_for_learning_scales_rewards_and_ends_at_time_limits() -> None:
    from qmix.data.episode_batch import EpisodeBatch
    from qmix.types import EnvInfo

    batch = EpisodeBatch.zeros(
        2, EnvInfo(n_agents=2, n_actions=3, obs_dim=4, state_dim=5, episode_limit=3)
    )
    batch.reward[:] = 1.5
    batch.terminated[0, 1] = True
    batch.truncated[1, 2] = True
    assert batch.for_learning() is batch  # nothing to change: the same batch
    seen = batch.for_learning(reward_scale=2.0, time_limit_terminal=True)
    assert torch.equal(seen.reward, torch.full((2, 3), 3.0))
    assert seen.terminated.tolist() == [[False, True, False], [False, False, True]]
    assert batch.reward[0, 0] == 1.5 and not batch.terminated[1, 2]  # the original is kept
    assert torch.equal(batch.for_learning(reward_scale=2.0).terminated, batch.terminated)
