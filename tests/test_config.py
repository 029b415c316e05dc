"""Configuration: presets, overrides, one-line errors for unknown keys, types and ranges."""

from __future__ import annotations

import pytest

from qmix.config import (
    Config,
    ConfigError,
    algorithm_presets,
    config_from_dict,
    make_config,
    parse_override,
    task_presets,
)


def test_presets_listed() -> None:
    assert {"qmix", "vdn", "iql"} <= set(algorithm_presets())
    assert {"two_step", "qtran_matrix", "climbing", "penalty"} <= set(task_presets())


def test_resolution_order_defaults_algo_task_overrides() -> None:
    cfg = make_config("vdn", "two_step", ["lr=1e-3", "seed=3"])
    assert cfg.mixer == "vdn"  # algorithm preset
    assert cfg.agent == "mlp" and cfg.mixing_embed_dim == 8  # task preset
    assert cfg.lr == 1e-3 and cfg.seed == 3  # overrides
    assert cfg.grad_norm_clip == 10.0  # default


def test_unknown_key_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'mixing_embed'.*mixing_embed_dim"):
        make_config("qmix", "two_step", ["mixing_embed=4"])


def test_unknown_presets() -> None:
    with pytest.raises(ConfigError, match=r"unknown algorithm 'qmx'.*qmix"):
        make_config("qmx", "two_step")
    with pytest.raises(ConfigError, match=r"unknown task 'two_stp'.*two_step"):
        make_config("qmix", "two_stp")


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr=fast", "lr must be a finite float"),
        ("batch_size_episodes=0", "batch_size_episodes must be >= 1"),
        ("gamma=1.5", r"gamma must be in \[0, 1\]"),
        ("agent=lstm", "agent must be one of rnn, mlp"),
        ("lr=1e400", "lr must be a finite float"),
        ("lr=nan", "lr must be a finite float"),
        ("gamma=-inf", "gamma must be a finite float"),
        ("seed=-1", r"seed must be in \[0, 4294967295\]"),
        ("double_q=2", "double_q must be bool"),
        ("hypernet_layers=3", "hypernet_layers must be 1 or 2"),
        ("buffer_capacity_episodes=8", "exceeds buffer_capacity_episodes"),
        ("nonsense", "is not key=value"),
    ],
)
def test_bad_values_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        make_config("qmix", "two_step", [override])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "override, hint",
    [
        ("mixer=vdn", "choose the algorithm instead: qmix train ALGO two_step"),
        ("algo=vdn", "qmix train vdn two_step"),
        ("task=climbing", "qmix train qmix climbing"),
        ("env=climbing", "qmix train qmix climbing"),
    ],
)
def test_overrides_that_would_mislabel_the_run_are_refused(override: str, hint: str) -> None:
    """`qmix train qmix two_step mixer=vdn` trained VDN filed as QMIX (issue 13)."""
    with pytest.raises(ConfigError, match="would mislabel the run") as info:
        make_config("qmix", "two_step", [override])
    assert hint in str(info.value)


def test_value_parsing() -> None:
    assert parse_override("lr=5e-4") == ("lr", 5e-4)
    assert parse_override("double_q=false") == ("double_q", False)
    assert parse_override("env_args.k=-50") == ("env_args.k", -50)
    assert make_config("qmix", "two_step", {"lr": 1}).lr == 1.0  # ints promote to float


def test_env_args_dotted_keys_merge() -> None:
    cfg = make_config("qmix", "penalty", ["env_args.k=-50"])
    assert cfg.env_args == {"k": -50}


def test_user_task_path_skips_task_presets() -> None:
    cfg = make_config("qmix", "qmix.envs.matrix:make_climbing_game")
    assert cfg.task == "qmix.envs.matrix:make_climbing_game"


def test_round_trip_through_dict() -> None:
    cfg = make_config("iql", "climbing", ["seed=9"])
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="did you mean seed"):
        config_from_dict({**cfg.to_dict(), "seeds": 1})


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]
