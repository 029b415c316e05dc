"""COMA: the counterfactual advantage by hand, the policy's support, on-policy batches used
once, frozen target critics, learning on the two-step game, configs and every collection path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import qmix
from qmix.config import ConfigError, make_config
from qmix.data.episode_batch import EpisodeBatch
from qmix.envs.vector import InProcessVectorEnv
from qmix.learners import build_learner
from qmix.learners.coma import COMALearner, bootstrap_actions, counterfactual_advantages
from qmix.networks.critics import critic_inputs
from qmix.policy.selectors import policy_probs
from qmix.runner import EpisodeRunner
from qmix.trainer import train
from tests.conftest import CountdownEnv

TINY = ["total_env_steps=600", "test_interval_env_steps=200", "checkpoint_interval_env_steps=0"]


def _learner(**overrides: object) -> COMALearner:
    cfg = make_config("coma", "two_step", {"agent": "rnn", "obs_last_action": True, **overrides})
    learner = build_learner(cfg, CountdownEnv().env_info())
    assert isinstance(learner, COMALearner)
    return learner


def _batch(learner: COMALearner, episodes: int = 4) -> EpisodeBatch:
    envs = InProcessVectorEnv(CountdownEnv, episodes)
    batch, _ = EpisodeRunner(envs, learner.controller).run(list(range(episodes)), epsilon=0.5)
    return batch


# -- the maths, by hand ------------------------------------------------------------------------


def test_counterfactual_advantage_by_hand() -> None:
    q = torch.tensor([[1.0, 4.0, -2.0], [0.0, 2.0, 6.0]])  # [N=2, A=3]
    pi = torch.tensor([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    actions = torch.tensor([1, 0])
    # agent 0: Q 4 - (0.5 * 1 + 0.5 * 4) = 1.5; agent 1: Q 0 - (0.5 + 3) = -3.5
    assert counterfactual_advantages(q, pi, actions).tolist() == [1.5, -3.5]


def test_the_policy_puts_no_mass_on_unavailable_actions() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 3, 5, generator=gen) * 20  # [B, N, A]
    avail = torch.rand(64, 3, 5, generator=gen) < 0.4
    avail[..., 2] |= ~avail.any(-1)
    logits[..., 0] = 1e4  # the likeliest logit is often unavailable
    for epsilon in (0.0, 0.3, 1.0):
        pi = policy_probs(logits, avail, epsilon)
        assert (pi[~avail] == 0).all()
        assert torch.allclose(pi.sum(-1), torch.ones(64, 3))
    uniform = policy_probs(logits, avail, 1.0)
    assert torch.allclose(
        uniform[avail], (1.0 / avail.sum(-1, keepdim=True).float()).expand_as(avail)[avail]
    )


def test_critic_inputs_hide_the_agents_own_action_and_show_the_last_joint_action() -> None:
    state = torch.arange(2.0).reshape(1, 1, 2).expand(1, 2, 2)  # [B, T, S]
    obs = torch.zeros(1, 2, 2, 1)  # [B, T, N, O]
    actions = torch.tensor([[[0, 2], [1, 1]]])  # [B, T, N], A = 3
    x = critic_inputs(state, obs, actions, 3)  # [B, T, N, 2 + 1 + 6 + 6 + 2]
    assert x.shape == (1, 2, 2, 17)
    others = x[0, 0, :, 3:9]  # slot 0: agent 0 sees agent 1's action 2 only, and vice versa
    assert others.tolist() == [[0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0]]
    assert x[0, 0, :, 9:15].abs().sum() == 0  # no previous action at slot 0
    assert x[0, 1, 0, 9:15].tolist() == [1, 0, 0, 0, 0, 1]  # slot 1: the joint action of slot 0
    assert x[0, 1, :, 15:].tolist() == [[1, 0], [0, 1]]  # agent ids


def test_bootstrap_actions_fill_the_slot_after_each_episode_from_the_policy() -> None:
    actions = torch.tensor([[[1], [1], [0]], [[2], [0], [0]]])  # [B=2, T=3, N=1]
    filled = torch.tensor([[True, True, False], [True, False, False]])
    pi = torch.zeros(2, 4, 1, 3)
    pi[..., 2] = 1.0  # the policy always picks action 2
    out = bootstrap_actions(actions, pi, filled)  # [B, T+1, N]
    assert out[:, :, 0].tolist() == [[1, 1, 2, 0], [2, 2, 0, 0]]


# -- the learner -------------------------------------------------------------------------------


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_the_target_critic_is_frozen_between_copies() -> None:
    learner = _learner(critic_target_update_interval=10)
    batch = _batch(learner)  # Countdown episodes: 3 transitions, so 3 critic updates a batch
    frozen = _params(learner.target_critic)
    learner.train(batch)
    learner.train(batch)
    learner.train(batch)  # 9 critic updates: no copy yet
    assert learner.critic_updates == 9
    assert _same(frozen, _params(learner.target_critic))
    assert not _same(frozen, _params(learner.critic))
    learner.train(batch)  # 12 >= 10: copied after this update
    assert learner.last_target_update == 12
    online, target = _params(learner.critic), _params(learner.target_critic)
    assert _same(online, target)


def test_one_update_changes_actor_and_critic_and_reports_its_figures() -> None:
    learner = _learner()
    actor, critic = _params(learner.agent), _params(learner.critic)
    stats = learner.train(_batch(learner))
    assert list(stats)[:2] == ["loss", "grad_norm"]
    assert {"critic_loss", "q_taken_mean", "target_mean", "advantage_mean", "pi_max"} <= set(stats)
    assert not _same(actor, _params(learner.agent))
    assert not _same(critic, _params(learner.critic))


def test_a_diverging_critic_stops_before_its_step() -> None:
    learner = _learner()
    batch = _batch(learner)
    batch.reward[:] = float("nan")
    before = _params(learner.critic)
    with pytest.raises(qmix.DivergenceError, match="is nan"):
        learner.train(batch)
    assert _same(before, _params(learner.critic))


# -- the loop ----------------------------------------------------------------------------------


def test_on_policy_batches_are_the_episodes_just_played_and_used_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[EpisodeBatch] = []
    original = COMALearner.train

    def spy(self: COMALearner, batch: EpisodeBatch) -> dict[str, float]:
        seen.append(batch)
        return original(self, batch)

    monkeypatch.setattr(COMALearner, "train", spy)
    cfg = make_config("coma", "two_step", [*TINY, "n_envs=4"])
    run = train(cfg, run_dir=tmp_path / "run", progress=False)
    episodes = run.metrics[-1]["episodes"]
    assert all(batch.batch_size == 4 for batch in seen)  # n_envs episodes each, no carry-over
    assert len(seen) * 4 == episodes  # every episode in exactly one update
    fingerprints = {(b.state.sum().item(), b.actions.sum().item(), id(b.obs)) for b in seen}
    assert len({id(b.obs) for b in seen}) == len(seen) == len(fingerprints)
    assert "buffer_episodes" not in run.metrics[-1]


def test_coma_learns_the_two_step_game(tmp_path: Path) -> None:
    """Random play earns 4.75 on average (7 on one branch, 2.5 on the other); COMA must
    clearly beat it. (It settles on the safe 7, not the optimum 8: README.)"""
    run = train(make_config("coma", "two_step"), run_dir=tmp_path / "run", progress=False)
    assert run.test_returns[-1] >= 7.0
    assert run.tables is not None and run.tables["greedy"]["return"] >= 7.0


def test_coma_with_environment_workers_resumes_and_evaluates(tmp_path: Path) -> None:
    cfg = make_config("coma", "lbf_8x8_2p_2f_coop", [*TINY, "n_envs=2", "env_workers=2"])
    run = train(cfg, run_dir=tmp_path / "run", progress=False)
    assert run.metrics[-1]["env_steps"] >= 600
    more = qmix.resume(tmp_path / "run", progress=False, total_env_steps=900)
    assert more.metrics[-1]["env_steps"] >= 900
    result = qmix.load(tmp_path / "run").evaluate(episodes=2)
    assert len(result.returns) == 2


# -- configs -----------------------------------------------------------------------------------


def test_coma_is_listed_and_builds_on_every_task_preset() -> None:
    assert {"coma", "qmix", "vdn", "iql"} <= set(qmix.config.algorithm_presets())
    for task in qmix.config.task_presets():
        for algo in qmix.config.algorithm_presets():
            cfg = make_config(algo, task)
            assert cfg.learner == ("coma" if algo == "coma" else "q")


def test_a_key_the_learner_does_not_use_is_an_error() -> None:
    with pytest.raises(ConfigError, match="double_q in overrides: the coma learner does not use"):
        make_config("coma", "two_step", ["double_q=true"])
    with pytest.raises(ConfigError, match="critic_lr in overrides: the q learner does not use"):
        make_config("qmix", "two_step", ["critic_lr=0.001"])
    with pytest.raises(ConfigError, match="learner=q would mislabel the run"):
        make_config("coma", "two_step", ["learner=q"])


def test_a_coma_config_file_holds_only_the_keys_coma_uses(tmp_path: Path) -> None:
    cfg = make_config("coma", "two_step")
    data = cfg.to_dict()
    assert data["learner"] == "coma" and "critic_lr" in data
    assert "mixer" not in data and "double_q" not in data and "buffer_capacity_episodes" not in data
    assert qmix.config.config_from_dict(data) == cfg
    with pytest.raises(ConfigError, match="mixer in the config: the coma learner does not use"):
        qmix.config.config_from_dict({**data, "mixer": "qmix"})


def test_a_task_preset_keeps_learner_only_keys_in_their_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = qmix.config.load_preset

    def preset(kind: str, name: str) -> dict[str, object]:
        if kind == "tasks":
            return dict(tasks[name])
        return real(kind, name)  # type: ignore[arg-type]

    tasks: dict[str, dict[str, object]] = {
        "top": {"env": "two_step", "double_q": False},
        "sections": {"env": "two_step", "q": {"double_q": False}, "coma": {"critic_lr": 1e-3}},
        "bad_section": {"env": "two_step", "coma": ["critic_lr"]},
        "identity": {"env": "two_step", "coma": {"learner": "q"}},
    }
    monkeypatch.setattr(qmix.config, "load_preset", preset)
    assert make_config("qmix", "top").double_q is False  # a Q key at the top: fine for q
    with pytest.raises(ConfigError, match="put it under the preset's q: section"):
        make_config("coma", "top")
    assert make_config("qmix", "sections").double_q is False
    assert make_config("coma", "sections").critic_lr == 1e-3
    assert make_config("qmix", "sections").critic_lr == 5e-4  # coma's section is not q's
    with pytest.raises(ConfigError, match="its coma: section must be a mapping"):
        make_config("coma", "bad_section")
    with pytest.raises(ConfigError, match="may not set"):
        make_config("coma", "identity")


def test_a_run_directory_written_before_learners_existed_still_resumes_and_loads(
    tmp_path: Path,
) -> None:
    """Config files written before the learner keys existed (no ``learner``, no ``critic_*``)
    are the same config: the run resumes and loads without a config-change complaint."""
    import yaml

    run_dir = tmp_path / "run"
    train(make_config("qmix", "two_step", TINY), run_dir=run_dir, progress=False)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    old = {k: v for k, v in config.items() if k != "learner"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    checkpoint = run_dir / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    state["config"] = old  # as an older version wrote it
    qmix.checkpoint.save_checkpoint(checkpoint, state)
    assert qmix.load(run_dir).config.learner == "q"
    more = qmix.resume(run_dir, progress=False, total_env_steps=800)
    assert more.metrics[-1]["env_steps"] >= 800
