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
        ("lr_finish_fraction=0", r"lr_finish_fraction in \(0, 1\], got 0 and 0"),
        ("lr_anneal_env_steps=-5", r"lr_anneal_env_steps must be >= 0"),
        ("lr_finish_fraction=0.5", "set lr_anneal_env_steps > 0 too"),
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


# -- family presets (issue 16) -------------------------------------------------------------------
def test_a_family_named_as_the_task_trains_with_its_family_preset() -> None:
    """`qmix train qmix lbf env_args.key=...` (the README's example) was "unknown task"."""
    sources: dict[str, str] = {}
    key = "Foraging-10x10-3p-3f-v3"
    cfg = make_config("qmix", "lbf", [f"env_args.key={key}"], sources=sources)
    assert cfg.env == "lbf" and cfg.env_args == {"state": "simulator", "key": key}
    assert cfg.optimizer == "adam" and cfg.updates_per_collect == 32 and cfg.n_envs == 8
    assert sources["lr"] == "family preset 'lbf' (q: section)"
    assert sources["n_envs"] == "family preset 'lbf'"
    assert sources["env_args.key"] == "overrides"


def test_layers_defaults_algorithm_family_task_overrides() -> None:
    sources: dict[str, str] = {}
    cfg = make_config("coma", "lbf_8x8_2p_2f_coop", ["seed=4"], sources=sources)
    assert cfg.n_envs == 8 and sources["n_envs"] == "family preset 'lbf'"  # over the algorithm
    assert cfg.critic_lr == 0.0005 and sources["critic_lr"] == "algorithm preset 'coma'"
    assert cfg.total_env_steps == 200_000  # the task over its family (2M)
    assert sources["total_env_steps"] == "task preset 'lbf_8x8_2p_2f_coop'"
    assert cfg.seed == 4 and sources["seed"] == "overrides"
    assert "grad_norm_clip" not in sources and cfg.grad_norm_clip == 10.0  # the default
    cfg = make_config("qmix", "lbf_8x8_2p_2f_coop", ["total_env_steps=1000", "lr=0.01"])
    assert cfg.total_env_steps == 1000 and cfg.lr == 0.01  # overrides over everything


def test_every_family_has_a_preset_and_every_preset_a_family() -> None:
    from qmix.config import family_presets, task_family
    from qmix.envs.registry import ENVS

    families = {spec.family for spec in ENVS.values() if spec.family}
    assert families == set(family_presets())
    assert task_family("my_package.my_env:make") == "user"
    assert task_family("two_step") == ""  # the matrix games have task presets of their own
    for family in family_presets():
        env = next(name for name, spec in ENVS.items() if spec.family == family)
        for algo in algorithm_presets():  # keys in the right sections, nothing refused
            cfg = make_config(algo, env)
            assert cfg.env == env


def test_a_user_environment_starts_from_the_user_family() -> None:
    sources: dict[str, str] = {}
    cfg = make_config("qmix", "qmix.envs.matrix:make_climbing_game", sources=sources)
    assert cfg.env == "qmix.envs.matrix:make_climbing_game" and cfg.n_envs == 8
    assert sources["total_env_steps"] == "family preset 'user'"


def test_a_family_preset_may_not_set_the_algorithm(monkeypatch: pytest.MonkeyPatch) -> None:
    import qmix.config as config

    real = config.load_preset

    def bad(kind: str, name: str) -> dict[str, object]:
        data = real(kind, name)  # type: ignore[arg-type]
        return {**data, "mixer": "vdn"} if kind == "families" else data

    monkeypatch.setattr(config, "load_preset", bad)
    with pytest.raises(ConfigError, match=r"family preset 'lbf' may not set \['mixer'\]"):
        make_config("qmix", "lbf")


def test_an_unknown_task_names_the_nearest_task_or_environment() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'lbff' \(did you mean lbf"):
        make_config("qmix", "lbff")
