"""benchmarks/reference_policies.py: standing-still and random returns, batched or not."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    return load_benchmark("reference_policies")


def test_choose_keeps_to_available_actions(ref: ModuleType) -> None:
    avail = np.array([[[False, True, False], [True, False, True]]] * 50)  # [50, N=2, A=3]
    rng = np.random.default_rng(0)
    actions = ref.choose("random", avail, rng)  # [50, 2]
    assert actions.shape == (50, 2)
    assert (actions[:, 0] == 1).all() and set(actions[:, 1]) == {0, 2}
    assert (ref.choose("noop", avail, rng) == 0).all()


def test_a_vectorised_simulator_plays_its_episodes_as_one_batch(ref: ModuleType) -> None:
    pytest.importorskip("vmas")
    overrides = ["env_args.scenario=navigation", "env_args.max_steps=5"]
    still = ref.play("vmas", "noop", 4, overrides)
    random = ref.play("vmas", "random", 4, overrides)
    assert len(still) == len(random) == 4
    assert still == pytest.approx([0.0] * 4)  # navigation rewards progress: none standing still
    assert all(np.isfinite(random)) and random != still
