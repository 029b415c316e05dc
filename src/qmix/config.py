"""Typed run configuration: one frozen dataclass, YAML presets, ``key=value`` overrides.

Resolution order (later wins): field defaults < algorithm preset < family preset (the task's
environment family: ``lbf``, ``smax``, ..., ``user`` for a ``module:factory``) < task preset <
overrides; in a family or task preset, its section for the learner comes after its other keys.
Family and task presets may tune learning settings (the two-step preset carries the paper's
settings) but may not change the algorithm's identity (``learner``, ``mixer``); see
:data:`ALGORITHM_KEYS`. Settings only one learner uses (:data:`LEARNER_KEYS`) sit in a preset's
section for that learner (``q:``, ``coma:``); set anywhere else for a learner that does not
use them, they are an error. Unknown keys, wrong types and out-of-range values raise
:class:`ConfigError` with a one-line message that names the nearest valid key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration problem, with a one-line message that says what to do."""


def _doc(text: str, default: Any) -> Any:
    """A dataclass field with a default and a one-line description."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class Config:
    """Everything a run needs. Defaults follow PyMARL's QMIX where one exists, except
    ``hypernet_layers``: 1, the paper's single-layer weight hypernetworks (PyMARL's qmix.yaml
    sets 2)."""

    # -- what to run ------------------------------------------------------------------------
    algo: str = _doc("algorithm preset name (informational once resolved)", "qmix")
    learner: Literal["q", "coma"] = _doc(
        "what learns (set by the algorithm preset): q (QMIX, VDN, IQL) or coma", "q"
    )
    task: str = _doc("task preset name from `qmix presets`, or 'module:factory'", "two_step")
    env: str = _doc("environment: registry name or 'module:factory' (task presets set it)", "")
    env_args: dict[str, Any] = _doc("keyword arguments for the environment's factory", {})
    seed: int = _doc("seed for torch, exploration and environment resets", 0)
    total_env_steps: int = _doc("training budget in environment steps (transitions)", 10_000)
    n_envs: int = _doc("environments stepped together (B); episodes per collection call", 1)
    env_workers: int = _doc("worker processes for the environments; 0 steps them in-process", 0)
    worker_timeout_seconds: float = _doc("a worker silent this long is reported as hung", 60.0)
    time_limit: Literal["bootstrap", "terminal"] = _doc(
        "an episode cut by its time limit: bootstrap from its last state (the value of going "
        "on), or learn it as a terminal (EPyMARL, JaxMARL)",
        "bootstrap",
    )
    reward_scale: float = _doc(
        "the team reward is multiplied by this for learning (returns are logged unscaled)", 1.0
    )
    # -- agent network ----------------------------------------------------------------------
    agent: Literal["rnn", "mlp"] = _doc("agent network: rnn (Linear-ReLU-GRU-Linear) or mlp", "rnn")
    agent_hidden_dim: int = _doc("hidden width H of the agent network", 64)
    obs_last_action: bool = _doc("append the one-hot previous action to agent inputs", True)
    obs_agent_id: bool = _doc("append the one-hot agent index to agent inputs", True)
    share_agent_params: bool = _doc("one network shared by all agents (else one per agent)", True)
    # -- mixer ------------------------------------------------------------------------------
    mixer: Literal["qmix", "vdn", "none", "qtran", "qplex"] = _doc(
        "qmix, vdn, none (IQL), qtran (QTRAN-base's joint networks) or qplex (duplex dueling)",
        "qmix",
    )
    mixer_input: Literal["state", "obs_concat", "state_obs", "constant"] = _doc(
        "what the hypernetworks see: the env state, the concatenated agent observations, both "
        "(state_obs), or a constant (mixing weights that depend on nothing: the control)",
        "state",
    )
    mixing_embed_dim: int = _doc("QMIX mixing-layer width E", 32)
    hypernet_layers: int = _doc("depth of the weight hypernetworks: 1 or 2", 1)
    hypernet_embed_dim: int = _doc("hidden width of 2-layer weight hypernetworks", 64)
    # -- QPLEX (Wang et al. 2021) -----------------------------------------------------------
    qplex_heads: int = _doc("attention heads of QPLEX's lambda(s, u) (theirs: num_kernel 10)", 10)
    qplex_head_embed_dim: int = _doc("width of QPLEX's attention networks (theirs: 64)", 64)
    # -- QTRAN-base (Son et al. 2019) -------------------------------------------------------
    qtran_embed_dim: int = _doc("width of QTRAN's joint Q and V networks (PyMARL: 64)", 64)
    qtran_opt_loss_weight: float = _doc("weight of QTRAN's optimality loss (PyMARL: 1)", 1.0)
    qtran_nopt_loss_weight: float = _doc("weight of QTRAN's non-optimality loss (PyMARL: 0.1)", 0.1)
    # -- Weighted QMIX (Rashid et al. 2020) -------------------------------------------------
    weighting: Literal["none", "ow", "cw"] = _doc(
        "Weighted QMIX's weighting (set by the ow_qmix / cw_qmix presets); none: plain", "none"
    )
    weighting_alpha: float = _doc("weight of the errors that matter less (their code: 0.1)", 0.1)
    central_agent_hidden_dim: int = _doc("hidden width of the central Q*'s agent network", 64)
    central_mixing_embed_dim: int = _doc("width of the central Q*'s feed-forward mixer", 256)
    # -- learner ----------------------------------------------------------------------------
    gamma: float = _doc("discount factor", 0.99)
    td_lambda: float = _doc("TD(lambda) mixing; 0 is one-step TD", 0.0)
    double_q: bool = _doc("select target actions with the online network (double Q)", True)
    optimizer: Literal["rmsprop", "adam"] = _doc("optimiser", "rmsprop")
    lr: float = _doc("learning rate", 5e-4)
    lr_anneal_env_steps: int = _doc(
        "env steps over which every learning rate (lr, critic_lr) falls linearly to "
        "lr_finish_fraction of itself, then stays; 0: constant (PyMARL)",
        0,
    )
    lr_finish_fraction: float = _doc(
        "the learning rates at the end of lr_anneal_env_steps, as a fraction of their value", 1.0
    )
    optim_alpha: float = _doc("RMSprop smoothing constant (PyMARL: 0.99)", 0.99)
    optim_eps: float = _doc("optimiser epsilon (PyMARL: 1e-5)", 1e-5)
    grad_norm_clip: float = _doc("clip the gradient's global norm to this", 10.0)
    batch_size_episodes: int = _doc("episodes per training batch", 32)
    buffer_capacity_episodes: int = _doc("replay capacity in episodes", 5000)
    updates_per_collect: int = _doc("gradient updates after each collection call", 1)
    updates_per_env_step: float = _doc(
        "if > 0: gradient updates per env step collected, in place of updates_per_collect "
        "(whole updates after each collection call, the fraction carried over), so an update "
        "costs the same share of every env step however long the episodes; 0: "
        "updates_per_collect per call (PyMARL)",
        0.0,
    )
    updates_per_env_step_start: float = _doc(
        "the update rate at env step 0 when updates_per_env_step_anneal_env_steps > 0: it "
        "moves linearly to updates_per_env_step (few updates while the agents explore, more "
        "once the episodes carry what they learned; the cost of every step known in advance)",
        0.0,
    )
    updates_per_env_step_anneal_env_steps: int = _doc(
        "env steps of the linear ramp of the update rate; 0: updates_per_env_step throughout", 0
    )
    updates_per_env_step_max: float = _doc(
        "if > 0: updates_per_collect per call, but at most this many per env step collected "
        "(the fraction carried over): as many updates per episode while episodes are long, "
        "fewer once they are short (an update costs about the same however short its "
        "episodes); 0: no cap",
        0.0,
    )
    target_update: Literal["hard", "soft"] = _doc(
        "hard copy every K episodes, or soft (tau)", "hard"
    )
    target_update_interval_episodes: int = _doc("K: episodes between hard target copies", 200)
    target_tau: float = _doc("soft target update rate per gradient update", 0.005)
    # -- COMA's critic ----------------------------------------------------------------------
    critic_lr: float = _doc("learning rate of COMA's critic (PyMARL: 5e-4)", 5e-4)
    critic_hidden_dim: int = _doc("width of COMA's critic, 3 layers (PyMARL: 128)", 128)
    critic_target_update_interval: int = _doc(
        "critic updates between copies into COMA's target critic (PyMARL: 200)", 200
    )
    # -- exploration ------------------------------------------------------------------------
    epsilon_start: float = _doc(
        "epsilon at step 0 (epsilon-greedy; COMA: the weight of the uniform floor)", 1.0
    )
    epsilon_finish: float = _doc("epsilon after the anneal", 0.05)
    epsilon_anneal_env_steps: int = _doc("env steps of the linear epsilon anneal", 50_000)
    # -- evaluation and logging -------------------------------------------------------------
    test_interval_env_steps: int = _doc("env steps between greedy test evaluations", 2_000)
    test_episodes: int = _doc("greedy episodes per test evaluation", 32)
    log_interval_env_steps: int = _doc("env steps between progress lines", 2_000)
    runs_dir: str = _doc("parent folder of run directories", "runs")
    checkpoint_interval_env_steps: int = _doc(
        "env steps between checkpoints of the full training state (0: only the final one)",
        100_000,
    )
    tensorboard: bool = _doc("also write TensorBoard event files (tb/ in the run directory)", True)
    device: str = _doc("torch device for learning: cpu or cuda", "cpu")
    torch_threads: int = _doc("torch CPU threads per process (1 is fastest on small nets)", 1)

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (YAML/JSON serialisable) of the keys that apply to its learner."""
        return {k: v for k, v in dataclasses.asdict(self).items() if applies(k, self.learner)}


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Config)}
LEARNERS: tuple[str, ...] = typing.get_args(typing.get_type_hints(Config)["learner"])
LEARNER_KEYS: dict[str, frozenset[str]] = {
    "q": frozenset(
        {
            "mixer",
            "mixer_input",
            "mixing_embed_dim",
            "hypernet_layers",
            "hypernet_embed_dim",
            "double_q",
            "batch_size_episodes",
            "buffer_capacity_episodes",
            "updates_per_collect",
            "updates_per_env_step",
            "updates_per_env_step_start",
            "updates_per_env_step_anneal_env_steps",
            "updates_per_env_step_max",
            "target_update",
            "target_update_interval_episodes",
            "target_tau",
            "qplex_heads",
            "qplex_head_embed_dim",
            "qtran_embed_dim",
            "qtran_opt_loss_weight",
            "qtran_nopt_loss_weight",
            "weighting",
            "weighting_alpha",
            "central_agent_hidden_dim",
            "central_mixing_embed_dim",
        }
    ),
    "coma": frozenset({"critic_lr", "critic_hidden_dim", "critic_target_update_interval"}),
}
"""The keys only some learners use, by learner; every other key applies to every learner.
Setting a key the chosen learner does not use is an error, not silently ignored."""


def applies(key: str, learner: str) -> bool:
    """Whether config key ``key`` is used by ``learner``."""
    owners = [name for name, keys in LEARNER_KEYS.items() if key in keys]
    return not owners or learner in owners


ALGORITHM_KEYS = frozenset({"learner", "mixer", "weighting"})
"""Keys a family or task preset may not set: they define the algorithm, not the task."""
IDENTITY_KEYS = frozenset({"algo", "task", "env", *ALGORITHM_KEYS})
"""Keys no override may set: they name what runs, and the run directory and every summary are
filed under them, so an override would mislabel the run (issue 13)."""
MAX_SEED = 2**32 - 1  # numpy's SeedSequence and torch both take it; -1 is a user's typo


def field_doc(name: str) -> str:
    """One-line description of a config field."""
    return str(FIELDS[name].metadata.get("doc", ""))


# -- validation ------------------------------------------------------------------------------
_POSITIVE_INTS = (
    "total_env_steps",
    "n_envs",
    "agent_hidden_dim",
    "mixing_embed_dim",
    "hypernet_embed_dim",
    "batch_size_episodes",
    "buffer_capacity_episodes",
    "updates_per_collect",
    "target_update_interval_episodes",
    "critic_hidden_dim",
    "critic_target_update_interval",
    "central_agent_hidden_dim",
    "central_mixing_embed_dim",
    "qtran_embed_dim",
    "qplex_heads",
    "qplex_head_embed_dim",
    "epsilon_anneal_env_steps",
    "test_interval_env_steps",
    "log_interval_env_steps",
    "torch_threads",
)
_UNIT_INTERVAL = ("gamma", "td_lambda", "target_tau", "epsilon_start", "epsilon_finish")


def _validate(cfg: Config) -> None:
    hints = typing.get_type_hints(Config)
    for name, hint in hints.items():
        _check_type(name, getattr(cfg, name), hint)
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, {MAX_SEED}], got {cfg.seed}")
    for name in _POSITIVE_INTS:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in _UNIT_INTERVAL:
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    if cfg.env_workers < 0 or cfg.worker_timeout_seconds <= 0:
        raise ConfigError("env_workers must be >= 0 and worker_timeout_seconds > 0")
    if cfg.checkpoint_interval_env_steps < 0:
        raise ConfigError(
            f"checkpoint_interval_env_steps must be >= 0, got {cfg.checkpoint_interval_env_steps}"
        )
    if cfg.test_episodes < 0:
        raise ConfigError(f"test_episodes must be >= 0, got {cfg.test_episodes}")
    _validate_networks(cfg)
    _validate_schedules(cfg)


def _validate_schedules(cfg: Config) -> None:
    """The update rate's and the learning rates' schedules."""
    if cfg.updates_per_env_step < 0 or cfg.updates_per_env_step_start < 0:
        raise ConfigError(
            "updates_per_env_step and updates_per_env_step_start must be >= 0, got "
            f"{cfg.updates_per_env_step} and {cfg.updates_per_env_step_start}"
        )
    if cfg.updates_per_env_step_anneal_env_steps < 0:
        raise ConfigError(
            "updates_per_env_step_anneal_env_steps must be >= 0, got "
            f"{cfg.updates_per_env_step_anneal_env_steps}"
        )
    if cfg.updates_per_env_step_anneal_env_steps > 0 and cfg.updates_per_env_step == 0:
        raise ConfigError(
            "updates_per_env_step_anneal_env_steps ramps the rate up to updates_per_env_step: "
            "set updates_per_env_step > 0 too"
        )
    if cfg.updates_per_env_step_max < 0:
        raise ConfigError(
            f"updates_per_env_step_max must be >= 0, got {cfg.updates_per_env_step_max}"
        )
    if cfg.updates_per_env_step_max > 0 and cfg.updates_per_env_step > 0:
        raise ConfigError(
            "updates_per_env_step_max caps updates_per_collect; with updates_per_env_step > 0 "
            "the rate is set already: set one of them (updates_per_env_step=0 if a preset sets it)"
        )
    if cfg.lr_anneal_env_steps < 0 or not 0 < cfg.lr_finish_fraction <= 1:
        raise ConfigError(
            "lr_anneal_env_steps must be >= 0 and lr_finish_fraction in (0, 1], got "
            f"{cfg.lr_anneal_env_steps} and {cfg.lr_finish_fraction}"
        )
    if cfg.lr_finish_fraction != 1 and cfg.lr_anneal_env_steps == 0:
        raise ConfigError(
            "lr_finish_fraction is where lr_anneal_env_steps takes the learning rates: "
            "set lr_anneal_env_steps > 0 too"
        )


def _validate_networks(cfg: Config) -> None:
    """Network and learning settings that depend on each other."""
    if not 0.0 < cfg.weighting_alpha <= 1.0:
        raise ConfigError(f"weighting_alpha must be in (0, 1], got {cfg.weighting_alpha}")
    if cfg.weighting != "none" and cfg.mixer in ("none", "qtran", "qplex"):
        raise ConfigError("Weighted QMIX weights the errors of a mixed Q_tot: mixer qmix or vdn")
    if cfg.qtran_opt_loss_weight < 0 or cfg.qtran_nopt_loss_weight < 0:
        raise ConfigError("qtran_opt_loss_weight and qtran_nopt_loss_weight must be >= 0")
    if cfg.reward_scale <= 0:
        raise ConfigError(f"reward_scale must be > 0, got {cfg.reward_scale}")
    if cfg.hypernet_layers not in (1, 2):
        raise ConfigError(f"hypernet_layers must be 1 or 2, got {cfg.hypernet_layers}")
    if cfg.lr <= 0 or cfg.critic_lr <= 0 or cfg.optim_eps <= 0 or cfg.grad_norm_clip <= 0:
        raise ConfigError("lr, critic_lr, optim_eps and grad_norm_clip must be > 0")
    if cfg.batch_size_episodes > cfg.buffer_capacity_episodes:
        raise ConfigError(
            f"batch_size_episodes ({cfg.batch_size_episodes}) exceeds "
            f"buffer_capacity_episodes ({cfg.buffer_capacity_episodes})"
        )
    if cfg.device not in ("cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"device must be 'cpu' or 'cuda[:i]', got {cfg.device!r}")


def _check_type(name: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(
                f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}"
            )
        return
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {type(value).__name__}")
        return
    if origin in (types.UnionType, typing.Union):
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        # inf and nan are never a setting: lr=1e400 parses as inf and would train on garbage
        float: lambda v: (
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ),
        str: lambda v: isinstance(v, str),
    }[hint](value)
    if not ok:
        kind = "a finite float" if hint is float else hint.__name__
        raise ConfigError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")


# -- presets and overrides -------------------------------------------------------------------
def _preset_names(kind: str) -> list[str]:
    folder = resources.files("qmix.presets").joinpath(kind)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def algorithm_presets() -> list[str]:
    """Names of the shipped algorithm presets."""
    return _preset_names("algos")


def task_presets() -> list[str]:
    """Names of the shipped task presets."""
    return _preset_names("tasks")


def family_presets() -> list[str]:
    """Names of the shipped family presets (one per environment family, and ``user``)."""
    return _preset_names("families")


PresetKind = Literal["algos", "families", "tasks"]


def load_preset(kind: PresetKind, name: str) -> dict[str, Any]:
    """Read a preset's overrides; the ``description`` entry is returned under that key."""
    names = _preset_names(kind)
    if name not in names:
        label = {"algos": "algorithm", "families": "family", "tasks": "task"}[kind]
        raise ConfigError(f"unknown {label} {name!r}{_suggest(name, names)}; see `qmix presets`")
    text = resources.files("qmix.presets").joinpath(kind, f"{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {kind}/{name}.yaml must be a mapping")
    return data


def _suggest(key: str, options: list[str] | frozenset[str] | dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(options), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is parsed as YAML (``1e-3``, ``true``, ``[1, 2]``)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads 5e-4 as a string (it wants 5.0e-4); accept what Python accepts.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value) if any(c in value for c in ".eE") else int(value)
    return key.strip(), value


def _apply(
    merged: dict[str, Any],
    updates: dict[str, Any],
    source: str,
    learner: str,
    sources: dict[str, str] | None = None,
) -> None:
    """Merge ``updates`` (from ``source``) into ``merged``; ``sources`` records, per key, the
    source that set its value last."""
    for key, value in updates.items():
        head, _, sub = key.partition(".")
        if head not in FIELDS:
            raise ConfigError(f"unknown config key {head!r} in {source}{_suggest(head, FIELDS)}")
        if not applies(head, learner):
            raise ConfigError(_not_applicable(head, learner, source))
        if sub:
            if head != "env_args":
                raise ConfigError(f"{key!r} in {source}: only env_args takes dotted keys")
            merged["env_args"] = {**merged.get("env_args", {}), sub: value}
        elif head == "env_args" and isinstance(value, dict):
            merged["env_args"] = {**merged.get("env_args", {}), **value}
        else:
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if is_int and FIELDS[head].type in ("float", float):
                value = float(value)
            merged[key] = value
        if sources is not None:
            sources[key] = source


def _not_applicable(key: str, learner: str, source: str) -> str:
    owners = " or ".join(name for name, keys in LEARNER_KEYS.items() if key in keys)
    where = f"the {learner} learner does not use it (a setting of {owners})"
    if source.startswith(("task preset", "family preset")):
        return f"{key} in {source}: {where}; put it under the preset's {owners}: section"
    return f"{key} in {source}: {where}; remove it"


def make_config(
    algo: str,
    task: str,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    sources: dict[str, str] | None = None,
) -> Config:
    """Resolve presets and overrides into a validated :class:`Config`.

    Layers, each over the one before: the defaults, the algorithm preset, the family preset of
    the task's environment (``presets/families``: ``lbf``, ``smax``, ..., ``user`` for a
    ``module:factory``), the task preset, the overrides.

    Args:
        algo: algorithm preset name (``qmix``, ``vdn``, ``iql``, ...).
        task: a task preset, a registered environment (its family preset applies; its
            arguments come as ``env_args.*`` overrides), or a ``"module:factory"`` path.
        overrides: ``{"lr": 1e-3}`` or ``["lr=1e-3", "env_args.k=-50"]``.
        sources: filled with, per key set by a preset or override, where its value came from.

    Raises:
        ConfigError: unknown preset or key, wrong type, value out of range.
    """
    merged: dict[str, Any] = {"algo": algo, "task": task}
    algo_preset = load_preset("algos", algo)
    algo_preset.pop("description", None)
    learner = algo_preset.get("learner", "q")
    if learner not in LEARNERS:
        raise ConfigError(f"algorithm preset {algo!r}: learner must be one of {LEARNERS}")
    _apply(merged, algo_preset, f"algorithm preset {algo!r}", learner, sources)
    task_preset, env = _task_preset(task)
    family = task_family(env)
    if family:
        family_preset = load_preset("families", family)
        _apply_sections(merged, family_preset, f"family preset {family!r}", learner, sources)
    if task_preset is not None:
        _apply_sections(merged, task_preset, f"task preset {task!r}", learner, sources)
    if isinstance(overrides, list):
        overrides = dict(parse_override(item) for item in overrides)
    _refuse_identity(algo, task, overrides or {})
    _apply(merged, overrides or {}, "overrides", learner, sources)
    rate = merged.get("updates_per_env_step", 0.0)  # not yet type-checked: Config does that
    rated = isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0
    if "updates_per_collect" in (overrides or {}) and rated:
        raise ConfigError(
            "set updates_per_collect (per collection call) or updates_per_env_step (per env "
            "step), not both: with updates_per_env_step > 0 (add updates_per_env_step=0 if a "
            "preset sets it) updates_per_collect is not used"
        )
    if not merged.get("env"):
        merged["env"] = env  # a task without a preset names its environment directly
        if sources is not None:
            sources["env"] = "the task's name"
    try:
        return Config(**merged)
    except TypeError as err:  # pragma: no cover - _apply already rejects unknown keys
        raise ConfigError(str(err)) from err


def task_family(env: str) -> str:
    """The family preset of environment ``env`` ("": none, as for the matrix games, whose
    tasks all have presets)."""
    from qmix.envs.registry import env_spec  # the registry stays unimported until needed

    try:
        return env_spec(env).family
    except ValueError:  # pragma: no cover - _task_preset checked the name
        return ""


def _task_preset(task: str) -> tuple[dict[str, Any] | None, str]:
    """The task preset of ``task`` (None: it names an environment) and its environment."""
    from qmix.envs.registry import ENVS

    try:
        preset = load_preset("tasks", task)
    except ConfigError:
        if task in ENVS or ":" in task:
            return None, task
        tasks = task_presets()
        options = [*tasks, *(name for name in ENVS if name not in tasks)]
        raise ConfigError(
            f"unknown task {task!r}{_suggest(task, options)}: name a task preset, an "
            "environment (with its env_args), or module:factory; see `qmix presets`"
        ) from None
    return preset, str(preset.get("env", task))


def _apply_sections(
    merged: dict[str, Any],
    preset: dict[str, Any],
    label: str,
    learner: str,
    sources: dict[str, str] | None,
) -> None:
    """A family or task preset's keys for every learner, then its section for ``learner``
    (``q:``, ``coma:``): settings tuned for one learner stay out of the others' way."""
    preset = dict(preset)
    preset.pop("description", None)
    sections = {name: preset.pop(name) for name in LEARNERS if name in preset}
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{label}: its {name}: section must be a mapping")
    for part in (preset, *sections.values()):
        clash = ALGORITHM_KEYS & part.keys()
        if clash:
            raise ConfigError(f"{label} may not set {sorted(clash)}")
    _apply(merged, preset, label, learner, sources)
    if learner in sections:
        _apply(merged, sections[learner], f"{label} ({learner}: section)", learner, sources)


def _refuse_identity(algo: str, task: str, overrides: dict[str, Any]) -> None:
    """Overrides may tune a run, never rename what runs: ``mixer=vdn`` on ``qmix`` would train
    VDN filed as QMIX. Says what to type instead."""
    for key in overrides:
        head = key.partition(".")[0]
        if head not in IDENTITY_KEYS:
            continue
        value = overrides[key]
        if head in ALGORITHM_KEYS:
            hint = (
                f"choose the algorithm instead: qmix train ALGO {task} (`qmix presets` lists them)"
            )
        elif head == "algo":
            hint = f"name it as the first word: qmix train {value} {task}"
        else:  # task, env
            hint = f"name the task as the second word: qmix train {algo} {value}"
        raise ConfigError(f"{key}={value} would mislabel the run; {hint}")


RESUMABLE_KEYS = frozenset({"total_env_steps"})
"""Keys a resume may change without it counting as an edit (``--resume RUN total_env_steps=N``)."""


def config_changes(trained: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (trained_value, current_value)}`` for every key that differs, budget aside.

    Args:
        trained: the config a checkpoint was trained with (``Config.to_dict()``).
        current: the config now in the run directory.
    """
    trained, current = _normalised(trained), _normalised(current)
    keys = (set(trained) | set(current)) - RESUMABLE_KEYS
    return {
        key: (trained.get(key), current.get(key))
        for key in sorted(keys)
        if trained.get(key) != current.get(key)
    }


def _normalised(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict with its defaults filled in and the keys its learner does not use
    dropped: a config written before a key existed equals one written after."""
    defaults = dataclasses.asdict(Config())
    learner = data.get("learner", "q")
    return {k: v for k, v in {**defaults, **data}.items() if applies(k, learner)}


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a resolved config (e.g. a run directory's ``config.yaml``), validating it.

    Keys missing from ``data`` take their defaults (a config written before they existed)."""
    unknown = set(data) - set(FIELDS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown config key {key!r}{_suggest(key, FIELDS)}")
    learner = data.get("learner", "q")
    for key in data:
        if learner in LEARNERS and not applies(key, learner):
            raise ConfigError(_not_applicable(key, learner, "the config"))
    return Config(**data)
