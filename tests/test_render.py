"""Rendering: greedy episodes as frames and GIFs, matrix-game Q tables as heatmaps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PIL")

from PIL import Image, ImageSequence

from qmix.config import make_config
from qmix.envs.matrix import make_two_step
from qmix.envs.registry import make_env, make_vector_env
from qmix.learners import build_learner
from qmix.policy.controller import AgentController
from qmix.render import (
    as_rgb_frame,
    caption_frame,
    plot_q_tables,
    record_episode,
    save_gif,
    table_pairs,
)
from qmix.runner import EpisodeRunner
from qmix.trainer import tabular_report
from qmix.types import EnvInfo
from tests.conftest import CountdownEnv

LBF_TASK = {"key": "Foraging-8x8-2p-2f-coop-v3"}


class PaintedCountdown(CountdownEnv):
    """CountdownEnv (rewards 1, 2, 3, ...) whose frame shows the step count as a bar."""

    def render(self) -> np.ndarray:
        frame = np.zeros((6, 8, 3), dtype=np.uint8)
        frame[:, : self.t + 1, 0] = 255  # one red column per step taken, plus one
        return frame


def controller_for(info: EnvInfo, task: str = "lbf_8x8_2p_2f_coop") -> AgentController:
    """An untrained controller built exactly as training builds it (fixed weights)."""
    import torch

    torch.manual_seed(0)
    return build_learner(make_config("qmix", task), info).controller


def spy_actions(controller: AgentController, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every joint action the controller picks (``[B, N]`` arrays)."""
    chosen: list[Any] = []
    select = controller.select_actions

    def spy(*args: Any, **kwargs: Any) -> np.ndarray:
        actions = select(*args, **kwargs)
        chosen.append(actions.copy())
        return actions

    monkeypatch.setattr(controller, "select_actions", spy)
    return chosen


# -- record_episode ------------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "steps", "ret"), [(0, 1, 1.0), (1, 2, 3.0), (3, 3, 6.0)])
def test_record_episode_one_frame_per_step_plus_reset(seed: int, steps: int, ret: float) -> None:
    # seed 3 would last 4 steps but the limit is 3: the episode stops there, as in the runner
    env = PaintedCountdown(limit=3)
    frames, total = record_episode(env, controller_for(env.env_info(), "two_step"), seed)
    assert len(frames) == steps + 1
    assert total == ret  # 1 + 2 + ... + steps
    # frame t was taken after t steps: t + 1 red columns
    assert [int((f[0, :, 0] == 255).sum()) for f in frames] == list(range(1, steps + 2))


def test_record_episode_max_frames_keeps_the_whole_return() -> None:
    env = PaintedCountdown(limit=3)
    frames, total = record_episode(env, controller_for(env.env_info(), "two_step"), 3, max_frames=2)
    assert len(frames) == 2
    assert total == 6.0
    with pytest.raises(ValueError, match="max_frames"):
        record_episode(env, controller_for(env.env_info(), "two_step"), 0, max_frames=0)


def test_record_episode_without_render_names_the_tasks_that_render() -> None:
    game = make_two_step()
    with pytest.raises(ValueError, match=r"LBF, RWARE and MPE.*plot_q_tables"):
        record_episode(game, controller_for(game.env_info(), "two_step"), 0)


def test_as_rgb_frame_copies_drops_alpha_and_rejects_bad_frames() -> None:
    rgba = np.full((2, 3, 4), 7, dtype=np.uint8)
    frame = as_rgb_frame(rgba)
    assert frame.shape == (2, 3, 3) and frame.dtype == np.uint8
    rgba[...] = 0
    assert frame.max() == 7  # a copy, not a view of the renderer's buffer
    for bad in (None, np.zeros((4, 4)), np.zeros((4, 4, 2)), np.full((2, 2, 3), 300)):
        with pytest.raises(ValueError, match="frame"):
            as_rgb_frame(bad)


def test_lbf_episode_matches_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lbforaging")
    env = make_env("lbf", LBF_TASK)
    controller = controller_for(env.env_info())
    chosen = spy_actions(controller, monkeypatch)
    try:
        frames, total = record_episode(env, controller, seed=3)
    except ValueError as err:  # pyglet without a display or an EGL driver
        pytest.skip(f"LBF rendering unavailable here: {err}")
    recorded = np.concatenate(chosen)  # [T, N]
    chosen.clear()

    envs = make_vector_env("lbf", LBF_TASK, num_envs=1)
    batch, stats = EpisodeRunner(envs, controller).run([3], epsilon=0.0)
    length = stats.lengths[0]
    assert len(frames) == length + 1
    assert total == pytest.approx(stats.returns[0], abs=1e-6)
    np.testing.assert_array_equal(recorded, batch.actions[0, :length].numpy())
    assert {f.shape for f in frames} == {frames[0].shape}
    assert frames[0].dtype == np.uint8 and frames[0].shape[2] == 3
    assert min(frames[0].shape[:2]) >= 100  # a picture, not a placeholder
    envs.close()
    env.close()


def test_rware_frames_are_capped_but_the_episode_is_played_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("rware")
    env = make_env("rware", {"key": "rware-tiny-2ag-v2"})
    controller = controller_for(env.env_info(), "rware_tiny_2ag")
    chosen = spy_actions(controller, monkeypatch)
    try:
        frames, _ = record_episode(env, controller, seed=0, max_frames=4)
    except ValueError as err:
        pytest.skip(f"RWARE rendering unavailable here: {err}")
    assert len(frames) == 4
    assert len(chosen) == env.env_info().episode_limit  # RWARE only ends at its time limit
    env.close()


def test_mpe_renders_by_default_and_not_with_render_mode_none() -> None:
    pytest.importorskip("mpe2")
    plain = make_env("mpe", {"scenario": "simple_spread_v3", "render_mode": None})
    controller = controller_for(plain.env_info(), "mpe_simple_spread")
    with pytest.raises(ValueError, match="render_mode"):
        record_episode(plain, controller, seed=0)
    env = make_env("mpe", {"scenario": "simple_spread_v3"})
    frames, _ = record_episode(env, controller, seed=0)
    assert len(frames) == env.env_info().episode_limit + 1  # MPE always runs to max_cycles
    assert {f.shape for f in frames} == {frames[0].shape}
    # mpe2's close() quits pygame for every mpe2 env in the process: close the renderer last
    plain.close()
    env.close()


# -- save_gif ------------------------------------------------------------------------------------
def test_gif_has_one_frame_per_step_loops_and_decodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    # identical consecutive frames (agents standing still) must stay separate frames
    frames = [base, base, base, 255 - base, base]
    path = save_gif(frames, tmp_path / "episode.gif", fps=4)
    assert path == tmp_path / "episode.gif"
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == len(frames)  # decodes each
        assert gif.info["loop"] == 0  # forever
        assert gif.info["duration"] == 250  # ms at 4 fps
        assert gif.size[0] == 60 and gif.size[1] > 40  # the step-label strip is below
        first = np.asarray(gif.convert("RGB"))[:40]
    # palette quantisation changes colours a little, never the picture
    assert np.abs(first.astype(int) - base.astype(int)).mean() < 12
    assert [p.name for p in tmp_path.iterdir()] == ["episode.gif"]  # no temporary left over


def test_gif_of_a_recorded_episode(tmp_path: Path) -> None:
    env = PaintedCountdown(limit=3)
    frames, _ = record_episode(env, controller_for(env.env_info(), "two_step"), 3)
    path = save_gif(frames, tmp_path / "sub" / "run.gif", step_labels=False)
    with Image.open(path) as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 4 and gif.size == (8, 6)
        gif.seek(3)
        last = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal(last, frames[3])  # two colours: decoded exactly


def test_failed_gif_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.gif"
    path.write_bytes(b"old")

    def broken_save(self: Any, fp: Any, *args: Any, **kwargs: Any) -> None:
        Path(fp).write_bytes(b"GIF89a half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_gif([np.zeros((4, 4, 3), np.uint8)] * 2, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.gif"]


def test_save_gif_rejects_bad_input(tmp_path: Path) -> None:
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="no frames"):
        save_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="one shape"):
        save_gif([frame, np.zeros((5, 4, 3), np.uint8)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match=r"\.gif"):
        save_gif([frame], tmp_path / "a.png")
    with pytest.raises(ValueError, match="fps"):
        save_gif([frame], tmp_path / "a.gif", fps=0)
    assert list(tmp_path.iterdir()) == []


def test_caption_frame_adds_a_strip_below() -> None:
    frame = np.zeros((100, 80, 3), np.uint8)
    out = caption_frame(frame, "step 1 / 9")
    assert out.shape[0] > 100 and out.shape[1:] == (80, 3)
    np.testing.assert_array_equal(out[:100], frame)  # the picture is untouched
    strip = out[100:]
    assert strip.min() < 128 < strip.max()  # dark text on white


# -- Q-table heatmaps ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_step_tables() -> dict[str, Any]:
    """What the trainer writes to q_tables.json for two_step (untrained; JSON round trip)."""
    import torch

    torch.manual_seed(0)
    cfg = make_config("qmix", "two_step")
    game = make_two_step()
    learner = build_learner(cfg, game.env_info())
    runner = EpisodeRunner(make_vector_env("two_step", {}, num_envs=1), learner.controller)
    loaded: dict[str, Any] = json.loads(json.dumps(tabular_report(learner, runner, cfg, game)))
    return loaded


def test_table_pairs_reads_every_state_in_order(two_step_tables: dict[str, Any]) -> None:
    pairs = table_pairs(two_step_tables)
    assert [name for name, _, _ in pairs] == ["1", "2A", "2B"]
    for _, learned, true in pairs:
        assert learned.shape == true.shape == (2, 2)
    np.testing.assert_allclose(pairs[2][2], [[0, 1], [1, 8]])  # 2B: the payoff itself
    # the bare "states" mapping is accepted too
    assert len(table_pairs(two_step_tables["states"])) == 3


def test_table_pairs_rejects_what_it_cannot_draw() -> None:
    with pytest.raises(ValueError, match="states"):
        table_pairs({"states": {}})
    with pytest.raises(ValueError, match="true_q"):
        table_pairs({"states": {"s": {"q_tot": [[0.0]]}}})
    three_agents = np.zeros((2, 2, 2)).tolist()
    with pytest.raises(ValueError, match="two-agent"):
        table_pairs({"states": {"s": {"q_tot": three_agents, "true_q": three_agents}}})


def test_heatmap_png_one_row_per_state(tmp_path: Path, two_step_tables: dict[str, Any]) -> None:
    pytest.importorskip("matplotlib")
    path = plot_q_tables(two_step_tables, tmp_path / "q.png", title="qmix on two_step")
    one_state = {"states": {"2B": two_step_tables["states"]["2B"]}}
    single = plot_q_tables(one_state, tmp_path / "one.png")
    with Image.open(path) as img, Image.open(single) as one:
        assert img.format == "PNG"
        width, height = img.size
        assert 400 <= width <= 2000 and 400 <= height <= 3000
        assert height > 2 * one.size[1]  # three rows of panels against one
        assert width == one.size[0]  # two panels and a colour bar per row, whatever the rows
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 20  # drawn, not blank
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "q.png"]
