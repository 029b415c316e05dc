"""Replay buffer: wrap-around overwrites the oldest episodes, sampling is uniform and trimmed."""

from __future__ import annotations

import pytest
import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.data.replay_buffer import ReplayBuffer
from qmix.types import EnvInfo

INFO = EnvInfo(n_agents=2, n_actions=3, obs_dim=4, state_dim=5, episode_limit=6)


def _episodes(ids: list[int], length: int = 6) -> EpisodeBatch:
    batch = EpisodeBatch.zeros(len(ids), INFO)
    for row, ep in enumerate(ids):
        batch.reward[row, :length] = float(ep)
        batch.filled[row, :length] = True
        batch.obs[row, : length + 1] = float(ep)
    return batch


def test_wrap_around_keeps_the_newest_episodes() -> None:
    buffer = ReplayBuffer(5, INFO)
    buffer.insert(_episodes([0, 1, 2]))
    buffer.insert(_episodes([3, 4, 5]))
    buffer.insert(_episodes([6]))
    assert len(buffer) == 5
    held = sorted(int(r) for r in buffer.storage.reward[:, 0].tolist())
    assert held == [2, 3, 4, 5, 6]
    assert buffer.next_index == 2


def test_overwrite_clears_the_old_tail() -> None:
    buffer = ReplayBuffer(1, INFO)
    buffer.insert(_episodes([7], length=6))
    buffer.insert(_episodes([8], length=2))
    assert buffer.storage.filled[0].tolist() == [True, True, False, False, False, False]
    assert buffer.storage.reward[0, 2:].abs().sum() == 0
    assert buffer.storage.obs[0, 3:].abs().sum() == 0


def test_sample_is_distinct_trimmed_and_reproducible() -> None:
    buffer = ReplayBuffer(10, INFO)
    buffer.insert(_episodes([1, 2, 3], length=2))
    buffer.insert(_episodes([4, 5], length=3))
    assert buffer.can_sample(5) and not buffer.can_sample(6)
    sample = buffer.sample(5, torch.Generator().manual_seed(0))
    assert sample.max_steps == 3 and sample.obs.shape[1] == 4
    assert sorted(sample.reward[:, 0].tolist()) == [1, 2, 3, 4, 5]
    again = buffer.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(sample.reward, again.reward)
    with pytest.raises(ValueError, match="holds 5"):
        buffer.sample(6)


def test_sampling_is_roughly_uniform() -> None:
    buffer = ReplayBuffer(8, INFO)
    buffer.insert(_episodes(list(range(8))))
    gen = torch.Generator().manual_seed(1)
    counts = torch.zeros(8)
    for _ in range(2000):
        counts[buffer.sample(2, gen).reward[:, 0].long()] += 1
    assert (counts / counts.sum() - 1 / 8).abs().max() < 0.02


def test_state_dict_round_trip() -> None:
    buffer = ReplayBuffer(4, INFO)
    buffer.insert(_episodes([1, 2, 3, 4, 5]))
    clone = ReplayBuffer(4, INFO)
    clone.load_state_dict(buffer.state_dict())
    assert clone.size == buffer.size and clone.next_index == buffer.next_index
    assert torch.equal(clone.storage.reward, buffer.storage.reward)
