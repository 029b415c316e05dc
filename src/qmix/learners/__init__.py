"""Learners: what the training loop trains (issue 14).

The loop depends on the :class:`Learner` protocol only. An algorithm preset names its learner
(``learner: q`` for QMIX, VDN and IQL, which differ only in their mixer; ``learner: coma``);
:data:`LEARNERS` maps the names to builders and :func:`build_learner` builds one from a config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from qmix.learners.maths import DivergenceError

if TYPE_CHECKING:
    from torch import nn

    from qmix.config import Config
    from qmix.data.episode_batch import EpisodeBatch
    from qmix.policy.controller import AgentController
    from qmix.types import EnvInfo

__all__ = ["LEARNERS", "DivergenceError", "Learner", "build_learner"]


@runtime_checkable
class Learner(Protocol):
    """What the training loop needs of an algorithm.

    Attributes:
        controller: the agents it acts with (network, inputs, action selector).
        on_policy: learns from the episodes just played, once (else from a replay buffer).
    """

    controller: AgentController
    on_policy: bool

    def exploration(self, env_steps: int) -> float:
        """The exploration rate to act with after ``env_steps`` environment steps."""
        ...

    def train(self, batch: EpisodeBatch) -> dict[str, float]:
        """Learn from ``batch``; return the update's diagnostics (``loss`` first).

        Raises:
            DivergenceError: a loss, gradient or value stopped being finite (before any
                optimiser step that would apply it).
        """
        ...

    def diagnostics(self, batch: EpisodeBatch) -> dict[str, float]:
        """Figures about the networks on ``batch`` too costly to compute at every update,
        written with each training row (on the latest update's batch); ``{}`` if none."""
        ...

    def scale_learning_rates(self, scale: float) -> None:
        """Set every optimiser's learning rate to ``scale`` times its configured one (the
        loop's ``lr_anneal_env_steps`` schedule)."""
        ...

    def update_targets(self, episodes: int, last_update: int) -> bool:
        """Copy into the target networks if the learner's schedule says so, ``episodes``
        having been played and the last copy made at ``last_update`` episodes; ``True`` if
        copied. (A learner may keep its own schedule inside :meth:`train` instead.)"""
        ...

    def modules(self) -> dict[str, nn.Module]:
        """Every network, by name (checkpoints; ``agent`` is the acting network)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """``{"networks": {name: weights}, ...}``: everything to continue exactly."""
        ...

    def load_state_dict(self, state: dict[str, Any], weights_only: bool = False) -> None:
        """Restore :meth:`state_dict` (``weights_only``: the networks alone)."""
        ...


def _controller(cfg: Config, info: EnvInfo, selector: str) -> AgentController:
    """The agents: network, inputs and action selector, on ``cfg.device``."""
    from qmix.networks.agents import build_agent
    from qmix.policy.controller import AgentController, agent_input_dim
    from qmix.policy.selectors import build_selector

    input_dim = agent_input_dim(
        info.obs_dim, info.n_actions, info.n_agents, cfg.obs_last_action, cfg.obs_agent_id
    )
    agent = build_agent(
        cfg.agent,
        input_dim,
        info.n_actions,
        info.n_agents,
        cfg.agent_hidden_dim,
        cfg.share_agent_params,
    )
    agent.to(cfg.device)
    return AgentController(
        agent,
        info.n_actions,
        cfg.obs_last_action,
        cfg.obs_agent_id,
        build_selector(selector),  # type: ignore[arg-type]
    )


def _shared(cfg: Config) -> dict[str, Any]:
    """The settings every learner takes: discount, TD(lambda), optimiser, clipping, and the
    exploration schedule."""
    from qmix.policy.exploration import LinearSchedule

    return {
        "gamma": cfg.gamma,
        "td_lambda": cfg.td_lambda,
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "optim_alpha": cfg.optim_alpha,
        "optim_eps": cfg.optim_eps,
        "grad_norm_clip": cfg.grad_norm_clip,
        "exploration": LinearSchedule(
            cfg.epsilon_start, cfg.epsilon_finish, cfg.epsilon_anneal_env_steps
        ),
    }


def _build_q(cfg: Config, info: EnvInfo) -> Learner:
    """QMIX, VDN or IQL: epsilon-greedy agents, the config's mixer, TD learning; with a
    ``weighting``, Weighted QMIX's central Q* and weighted loss on top."""
    from qmix.learners.q import QLearner
    from qmix.learners.weighted import WeightedQLearner
    from qmix.networks.agents import build_agent
    from qmix.networks.mixers import CentralMixer, build_mixer, mixer_input_dim

    controller = _controller(cfg, info, "epsilon_greedy")
    mixer_dim = mixer_input_dim(cfg.mixer_input, info.state_dim, info.n_agents, info.obs_dim)
    if cfg.mixer == "qtran":
        return _build_qtran(cfg, info, controller, mixer_dim)
    if cfg.mixer == "qplex":
        from qmix.learners.qplex import QPLEXLearner
        from qmix.networks.mixers import QPLEXMixer

        qplex = QPLEXMixer(
            info.n_agents,
            info.n_actions,
            mixer_dim,
            cfg.hypernet_embed_dim,
            cfg.qplex_heads,
            cfg.qplex_head_embed_dim,
        )
        return QPLEXLearner(controller, qplex.to(cfg.device), **_q_settings(cfg))
    mixer = build_mixer(
        cfg.mixer,
        info.n_agents,
        mixer_dim,
        cfg.mixing_embed_dim,
        cfg.hypernet_layers,
        cfg.hypernet_embed_dim,
    )
    if mixer is not None:
        mixer.to(cfg.device)
    settings = _q_settings(cfg)
    if cfg.weighting == "none":
        return QLearner(controller, mixer, **settings)
    assert mixer is not None  # the config requires one
    central_agent = build_agent(
        cfg.agent,
        controller.agent.input_dim,
        info.n_actions,
        info.n_agents,
        cfg.central_agent_hidden_dim,
        cfg.share_agent_params,
    ).to(cfg.device)
    central_mixer = CentralMixer(info.n_agents, mixer_dim, cfg.central_mixing_embed_dim)
    return WeightedQLearner(
        controller,
        mixer,
        central_agent,
        central_mixer.to(cfg.device),
        weighting=cfg.weighting,
        alpha=cfg.weighting_alpha,
        **settings,
    )


def _q_settings(cfg: Config) -> dict[str, Any]:
    """The Q learner's own settings (QMIX, VDN, IQL and their variants)."""
    return {
        "mixer_input": cfg.mixer_input,
        "double_q": cfg.double_q,
        "target_update": cfg.target_update,
        "target_update_interval_episodes": cfg.target_update_interval_episodes,
        "target_tau": cfg.target_tau,
        **_shared(cfg),
    }


def _build_qtran(
    cfg: Config, info: EnvInfo, controller: AgentController, mixer_dim: int
) -> Learner:
    """QTRAN-base: the summed agents' Q-values tied to unrestricted joint networks."""
    from qmix.learners.qtran import QTranLearner
    from qmix.networks.mixers import QTranJoint

    features = cfg.agent_hidden_dim  # the agent network's layer under its output
    joint = QTranJoint(info.n_agents, info.n_actions, features, mixer_dim, cfg.qtran_embed_dim)
    return QTranLearner(
        controller,
        joint.to(cfg.device),
        opt_weight=cfg.qtran_opt_loss_weight,
        nopt_weight=cfg.qtran_nopt_loss_weight,
        **_q_settings(cfg),
    )


def _build_coma(cfg: Config, info: EnvInfo) -> Learner:
    """COMA: softmax-policy actors and a centralised critic."""
    from qmix.learners.coma import COMALearner
    from qmix.networks.critics import COMACritic, critic_input_dim

    controller = _controller(cfg, info, "softmax")
    dim = critic_input_dim(info.state_dim, info.obs_dim, info.n_agents, info.n_actions)
    critic = COMACritic(dim, info.n_actions, cfg.critic_hidden_dim).to(cfg.device)
    return COMALearner(
        controller,
        critic,
        critic_lr=cfg.critic_lr,
        target_update_interval=cfg.critic_target_update_interval,
        **_shared(cfg),
    )


LEARNERS: dict[str, Callable[[Config, EnvInfo], Learner]] = {"q": _build_q, "coma": _build_coma}
"""Learner name (the config's ``learner``) -> builder."""


def build_learner(cfg: Config, info: EnvInfo) -> Learner:
    """The learner ``cfg.learner`` names, with its networks, for a task of sizes ``info``."""
    return LEARNERS[cfg.learner](cfg, info)
