"""Looking at a trained model: greedy episodes as GIFs, matrix-game Q tables as heatmaps.

- :func:`record_episode` plays one greedy episode of a :class:`~qmix.envs.base.MultiAgentEnv`
  and keeps an RGB frame ``[H, W, 3]`` uint8 after the reset and after every step.
- :func:`save_gif` writes such frames as a looping GIF (Pillow), atomically.
- :func:`plot_q_tables` draws the learned ``Q_tot`` of every state of a matrix game next to the
  true optimal values (``q_tables.json``, written by the trainer), as annotated heatmaps.

Which tasks render: LBF and RWARE (their own pyglet viewers; with no X display the adapter
switches pyglet to headless EGL rendering, which needs an EGL driver such as Mesa's) and MPE
(mpe2 draws on an off-screen pygame surface; the adapter builds it with
``render_mode="rgb_array"`` unless told ``env_args.render_mode=null``). Matrix games have no
frames: their picture is :func:`plot_q_tables`. Vectorised simulators (SMAX, VMAS) are not
single ``MultiAgentEnv``\\ s and are not rendered here.

Pillow and matplotlib are imported inside the functions that need them (the ``plots`` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qmix.envs.base import MultiAgentEnv
from qmix.files import atomic_write
from qmix.policy.controller import AgentController

RENDERING_TASKS = "LBF, RWARE and MPE"


# -- recording ---------------------------------------------------------------------------------
def as_rgb_frame(frame: Any) -> np.ndarray:
    """Check and normalise one rendered frame.

    Args:
        frame: what ``env.render()`` returned: ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA, integer
            values in 0..255.

    Returns:
        a fresh ``[H, W, 3]`` uint8 array (never a view of the env's own buffer, which some
        renderers reuse from frame to frame).

    Raises:
        ValueError: ``None``, another shape, or values outside 0..255.
    """
    if frame is None:
        raise ValueError("render() returned None instead of an RGB frame [H, W, 3]")
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or 0 in array.shape:
        raise ValueError(f"expected an RGB frame [H, W, 3], got shape {list(array.shape)}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"expected frame values in 0..255, got {array.min()}..{array.max()} ({array.dtype})"
            )
        array = array.astype(np.uint8)
    return np.array(array[..., :3], dtype=np.uint8, copy=True)  # drop alpha; own the memory


def _renderer(env: MultiAgentEnv) -> Callable[[], Any]:
    """``env.render``, with a one-line error naming the tasks that render when it has none."""
    render = getattr(env, "render", None)  # optional in the MultiAgentEnv protocol
    if not callable(render):
        raise ValueError(
            f"{type(env).__name__} has no render(): episodes can be rendered for "
            f"{RENDERING_TASKS}; matrix games are pictured with plot_q_tables"
        )
    return render


def _first_frame(env: MultiAgentEnv, render: Callable[[], Any]) -> np.ndarray:
    """The frame after reset; a renderer that cannot draw here fails with a one-line error."""
    try:
        return as_rgb_frame(render())
    # The first frame is a probe: a missing render_mode, display or EGL driver surfaces here
    # as whatever the renderer raises (RuntimeError, ValueError, pyglet's own exceptions).
    except Exception as err:
        raise ValueError(
            f"cannot render {type(env).__name__} ({type(err).__name__}: {err}); episodes can "
            f"be rendered for {RENDERING_TASKS}"
        ) from err


def record_episode(
    env: MultiAgentEnv,
    controller: AgentController,
    seed: int,
    max_frames: int | None = None,
) -> tuple[list[np.ndarray], float]:
    """Play one greedy (epsilon 0) episode and keep a frame after the reset and every step.

    The episode is exactly the one :class:`~qmix.runner.EpisodeRunner` plays with the same
    seed and epsilon 0: same reset seed, same decentralised greedy actions, same end
    (the env's ``terminated``/``truncated``, or ``episode_limit`` steps). The env is left open
    (the caller owns it); the controller's hidden state is reset for a batch of one.

    Args:
        env: the task; must implement ``render() -> [H, W, 3]`` uint8.
        controller: the trained agents.
        seed: reset seed of the episode.
        max_frames: keep at most this many frames (the first ones). The episode is still
            played to its end, so the return is always the whole episode's.

    Returns:
        ``frames``: ``T_ep + 1`` arrays ``[H, W, 3]`` uint8 (fewer with ``max_frames``), and
        the team return (sum of the rewards of the ``T_ep`` steps).

    Raises:
        ValueError: the env cannot render (the message names the tasks that can), frames
            change size mid-episode, or ``max_frames < 1``.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1 (or None for all), got {max_frames}")
    render = _renderer(env)
    limit = env.env_info().episode_limit
    env.reset(seed=seed)
    controller.init_hidden(1)
    frames = [_first_frame(env, render)]
    shape = frames[0].shape
    total = 0.0
    for t in range(limit):
        obs = np.asarray(env.observations(), dtype=np.float32)  # [N, O]
        avail = np.asarray(env.avail_actions(), dtype=bool)  # [N, A]
        actions = controller.select_actions(obs[None], avail[None], None)  # [1, N]
        result = env.step(actions[0])
        total += float(result.reward)
        if max_frames is None or len(frames) < max_frames:
            frame = as_rgb_frame(render())
            if frame.shape != shape:
                raise ValueError(
                    f"frame {t + 1} has shape {list(frame.shape)}, frame 0 had {list(shape)}: "
                    "a GIF needs frames of one size"
                )
            frames.append(frame)
        if result.terminated or result.truncated:
            break
    return frames, total


# -- GIF -----------------------------------------------------------------------------------------
def caption_frame(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame [H, W, 3]`` uint8 with a white strip below it holding ``text``.

    Returns:
        ``[H + h, W, 3]`` uint8, ``h`` about 6% of ``H`` (at least 14 pixels).
    """
    from PIL import Image, ImageDraw, ImageFont

    height, width = frame.shape[:2]
    strip = max(14, round(0.06 * height))
    canvas = Image.new("RGB", (width, height + strip), (255, 255, 255))
    canvas.paste(Image.fromarray(frame), (0, 0))
    try:
        font: Any = ImageFont.load_default(size=max(10, strip - 4))
    except TypeError:  # Pillow < 10.1: one bitmap size only
        font = ImageFont.load_default()
    ImageDraw.Draw(canvas).text((4, height + 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def save_gif(
    frames: Sequence[np.ndarray], path: Path, fps: int = 5, step_labels: bool = True
) -> Path:
    """Write ``frames`` as a GIF that loops forever; atomic (temporary file, then rename).

    Args:
        frames: ``K`` arrays ``[H, W, 3]`` uint8, all of one shape (e.g. from
            :func:`record_episode`).
        path: the ``.gif`` file to write; parent directories are created.
        fps: frames per second, 1..50 (GIF delays are counted in hundredths of a second and
            viewers slow down faster ones).
        step_labels: add a strip below each frame reading ``step t / K-1``. Besides telling
            the viewer where they are, it keeps every step a frame of its own: Pillow merges
            identical consecutive frames into one longer frame (an agent standing still would
            otherwise vanish from the frame count).

    Returns:
        ``path``.

    Raises:
        ValueError: no frames, frames of different shapes or not ``[H, W, 3]``, ``fps`` out of
            range, or ``path`` not ending in ``.gif``.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"expected a path ending in .gif, got {str(path)!r}")
    if not 1 <= fps <= 50:
        raise ValueError(f"fps must be between 1 and 50, got {fps}")
    if len(frames) == 0:
        raise ValueError("no frames to save: record an episode first")
    checked = [as_rgb_frame(f) for f in frames]
    for i, frame in enumerate(checked):
        if frame.shape != checked[0].shape:
            raise ValueError(
                f"every frame needs one shape: frame {i} is {list(frame.shape)}, "
                f"frame 0 is {list(checked[0].shape)}"
            )
    last = len(checked) - 1
    if step_labels:
        checked = [caption_frame(f, f"step {t} / {last}") for t, f in enumerate(checked)]
    images = [Image.fromarray(f) for f in checked]

    def write(tmp: Path) -> None:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),  # milliseconds per frame
            loop=0,  # 0 = loop forever
        )

    return atomic_write(path, write)


# -- matrix-game Q tables ------------------------------------------------------------------------
def table_pairs(tables: Mapping[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The (state, learned ``Q_tot``, true optimal Q) tables to draw, in the file's order.

    Args:
        tables: the contents of ``q_tables.json`` (``{"states": {...}, "greedy": {...}}``, as
            :func:`qmix.trainer.tabular_report` returns) or just its ``"states"`` mapping:
            per state ``{"q_tot": [A][A], "true_q": [A][A], ...}``.

    Returns:
        per state: its name, learned ``[A, A]`` and true ``[A, A]`` float arrays (rows: agent
        1's action, columns: agent 2's).

    Raises:
        ValueError: no states, a state without ``q_tot``/``true_q``, or tables that are not
            square two-agent matrices of one shape.
    """
    states = tables.get("states", tables)
    if not isinstance(states, Mapping) or not states:
        raise ValueError("expected q_tables.json contents: a 'states' mapping with tables")
    pairs = []
    for name, entry in states.items():
        if not isinstance(entry, Mapping) or "q_tot" not in entry or "true_q" not in entry:
            raise ValueError(f"state {name!r} needs 'q_tot' and 'true_q' tables")
        learned = np.asarray(entry["q_tot"], dtype=np.float64)
        true = np.asarray(entry["true_q"], dtype=np.float64)
        if learned.ndim != 2 or learned.shape[0] != learned.shape[1] or true.shape != learned.shape:
            raise ValueError(
                f"state {name!r}: heatmaps need two-agent [A, A] tables, got q_tot "
                f"{list(learned.shape)} and true_q {list(true.shape)}"
            )
        pairs.append((str(name), learned, true))
    return pairs


def _greedy_line(greedy: Any) -> str:
    """``greedy joint actions (1, 0) -> (1, 1); return 8.00`` from the file's ``greedy``."""
    if not isinstance(greedy, Mapping) or "joint_actions" not in greedy:
        return ""
    joint = " → ".join(str(tuple(j)) for j in greedy["joint_actions"])
    ret = greedy.get("return")
    return f"greedy joint actions {joint}" + (f"; return {ret:.2f}" if ret is not None else "")


def plot_q_tables(tables: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """Heatmaps of the learned ``Q_tot`` next to the true optimal Q, one row per state.

    Each pair of panels shares one colour scale (and colour bar), so equal colours mean equal
    values; every cell is annotated with its value, and the largest cell(s) of each table are
    outlined (the learned table's is the joint action the greedy agents take there). Rows:
    agent 1's action; columns: agent 2's. The true table is the optimal ``Q*`` under the run's
    discount (``gamma``): the payoff itself in one-step games, discounted future payoff in
    earlier states of the two-step game.

    Args:
        tables: ``q_tables.json`` contents (see :func:`table_pairs`); its ``greedy`` entry, if
            any, is written under the title.
        path: the PNG to write (atomically; parent directories are created).
        title: first line of the figure title, e.g. ``"qmix on two_step, seed 0"``.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    pairs = table_pairs(tables)
    n_actions = pairs[0][1].shape[0]
    side = 1.6 + 0.75 * n_actions  # inches per panel: room for annotated cells
    fig, axes = plt.subplots(
        len(pairs),
        2,
        figsize=(2 * side + 1.2, side * len(pairs) + 0.9),
        dpi=110,
        squeeze=False,
        layout="constrained",
    )
    cmap = matplotlib.colormaps["viridis"]
    for row, (name, learned, true) in enumerate(pairs):
        lo, hi = float(min(learned.min(), true.min())), float(max(learned.max(), true.max()))
        if hi - lo < 1e-9:  # a constant pair: widen so the colours stay defined
            lo, hi = lo - 1.0, hi + 1.0
        norm = Normalize(vmin=lo, vmax=hi)
        images = []
        for col, (label, table) in enumerate(
            ((f"state {name}: learned Q_tot", learned), (f"state {name}: true optimal Q*", true))
        ):
            ax = axes[row, col]
            images.append(ax.imshow(table, cmap=cmap, norm=norm))
            best = table >= table.max() - 1e-6 * max(1.0, abs(float(table.max())))
            for (i, j), value in np.ndenumerate(table):
                # light text on the dark (low) end of viridis, dark text on the light end
                colour = "white" if norm(value) < 0.6 else "black"
                shown = round(float(value), 2) + 0.0  # + 0.0: print -0.003 as 0.00, not -0.00
                ax.text(j, i, f"{shown:.2f}", ha="center", va="center", color=colour, fontsize=9)
                if best[i, j]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2.0))
            ax.set_title(label, fontsize=10)
            ax.set_xticks(range(n_actions))
            ax.set_yticks(range(n_actions))
            ax.set_xlabel("agent 2 action")
            ax.set_ylabel("agent 1 action")
        fig.colorbar(images[0], ax=list(axes[row]), shrink=0.85, label="Q")
    lines = [title] if title else []
    greedy = _greedy_line(tables.get("greedy"))
    lines.append(greedy or "learned Q_tot vs true optimal Q")
    lines.append("red outline: largest value in the table")
    fig.suptitle("\n".join(lines), fontsize=10)
    try:
        return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
