"""Runs that cannot be mixed up, lost or hijacked (issue 13): real processes, real signals, real
lock contention, a real fault-injecting environment, real read-only and full file systems."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import qmix
from qmix.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from qmix.config import ConfigError
from qmix.logging import CLOCK_KEYS, read_metrics
from qmix.rundir import RunDirBusy, RunLock, create_run_dir, describe_os_error
from qmix.trainer import train

ROOT = Path(__file__).resolve().parents[1]
# two-step game: 2-step episodes, a few thousand steps hold many checkpoints and updates
SMALL = ["total_env_steps=1000", "checkpoint_interval_env_steps=500", "test_interval_env_steps=500"]
# a run that takes a few seconds, for lock contention and signals
SLOW = ["total_env_steps=40000", "checkpoint_interval_env_steps=100000"]
FAULTY = "tests.faulty_env:make"


def _env() -> dict[str, str]:
    """The child's environment: the source tree and the tests package importable, nothing else."""
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}


def _qmix_command() -> list[str]:
    """The installed console script (it does not put the working directory on sys.path)."""
    script = Path(sys.executable).parent / "qmix"
    return [str(script)] if script.exists() else [sys.executable, "-m", "qmix"]


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_qmix_command(), *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*_qmix_command(), *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str] | None = None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.communicate()}")
        time.sleep(0.01)


def _faulty_run(tmp_path: Path, *overrides: str) -> tuple[Path, subprocess.CompletedProcess]:
    """``qmix train qmix tests.faulty_env:make OVERRIDES`` into ``tmp_path/run``."""
    run_dir = tmp_path / "run"
    return run_dir, _cli(
        "train", "qmix", FAULTY, *overrides, "--run-dir", str(run_dir), cwd=tmp_path
    )


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = read_metrics(run_dir)
    for row in rows:
        for key in CLOCK_KEYS:  # the only figures that depend on the clock
            row.pop(key, None)
    return rows


def _networks(run_dir: Path, name: str = "checkpoint.pt") -> dict[str, Any]:
    return load_checkpoint(run_dir / name)["learner"]["networks"]


def _same_networks(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(torch.equal(a[n][k], t) for n, state in b.items() for k, t in state.items())


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- 1. one run directory, one writer ---------------------------------------------------------
def test_a_second_writer_of_a_run_directory_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = _start("train", "qmix", "two_step", *SLOW, "--run-dir", str(run_dir), cwd=tmp_path)
    try:
        _wait_for(run_dir / "metrics.jsonl", first)
        # a second new run into it, and a resume of it, while the first one trains
        second = _cli("train", "vdn", "two_step", "--run-dir", str(run_dir), cwd=tmp_path)
        resumed = _cli("train", "--resume", str(run_dir), cwd=tmp_path)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    for out in (second, resumed):
        assert out.returncode == 2
        line = _one_line(out.stderr)
        assert "is in use by qmix process" in line and str(first.pid) in line
    assert first.returncode == 143
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["algo"] == "qmix"
    read_metrics(run_dir)  # every row still in order: nobody else wrote


def test_the_lock_is_exclusive_and_dies_with_its_holder(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    with pytest.raises(RunDirBusy, match="is in use by"):
        RunLock(tmp_path)
    lock.release()
    RunLock(tmp_path).release()  # free again


def test_two_resumes_of_one_run_never_both_write(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = qmix.make_config("qmix", "two_step", ["total_env_steps=2000"])
    train(cfg, run_dir=run_dir, progress=False)
    procs = [
        _start("train", "--resume", str(run_dir), "total_env_steps=10000", "--quiet", cwd=tmp_path)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    rows = read_metrics(run_dir)  # raises if any row repeats
    assert rows[-1]["env_steps"] >= 10000
    assert len(json.loads((run_dir / "metadata.json").read_text())["resumed"]) == 1


def test_new_run_directories_are_created_atomically(tmp_path: Path) -> None:
    base = tmp_path / "runs" / "qmix_two_step_seed0_20260101-000000"
    made = [create_run_dir(base) for _ in range(3)]
    assert [p.name for p in made] == [base.name, f"{base.name}-1", f"{base.name}-2"]


@pytest.mark.parametrize(
    "steps, message", [([10, 20, 20], "at 20 env steps after a row at 20"), ([10, 30, 20], "at 20")]
)
def test_metric_readers_refuse_rows_that_repeat_or_go_backwards(
    tmp_path: Path, steps: list[int], message: str
) -> None:
    rows = [{"env_steps": s, "test_return": 8.0} for s in steps]
    rows.insert(1, {"env_steps": 10, "train_return": 1.0})  # a log row beside a test row is fine
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=message):
        read_metrics(tmp_path)


def test_summary_of_an_interleaved_run_is_refused(tmp_path: Path) -> None:
    """Two runs once wrote into one directory and `qmix summary` reported VDN at 8."""
    for algo in ("qmix", "vdn"):
        cfg = qmix.make_config(algo, "two_step", ["total_env_steps=1000"])
        train(cfg, run_dir=tmp_path / algo, progress=False)
    mixed = [*read_metrics(tmp_path / "vdn"), *read_metrics(tmp_path / "qmix")]
    (tmp_path / "vdn" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mixed))
    out = _cli("summary", str(tmp_path / "vdn"), cwd=tmp_path)
    assert out.returncode == 2 and "two processes wrote to this run" in _one_line(out.stderr)


# -- 2. every stopped run can continue --------------------------------------------------------
def test_ctrl_c_at_a_terminal_stops_a_run_with_workers_cleanly(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole process group, environment workers included:
    they must leave the stop to the trainer, which still needs them for its last step."""
    run_dir = tmp_path / "run"
    command = [*_qmix_command(), "train", "qmix", FAULTY, "env_workers=1", "n_envs=2"]
    command += ["total_env_steps=1000000", "--run-dir", str(run_dir)]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as at a terminal
    )
    _wait_for(run_dir / "metrics.jsonl", proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "checkpoint saved" in stderr.strip().splitlines()[-1]
    assert load_checkpoint(run_dir / "checkpoint.pt")["loop"]["env_steps"] > 0


def test_a_run_killed_before_its_first_metrics_row_resumes(tmp_path: Path) -> None:
    """Its first checkpoint came before any metrics row: resume used to fail forever."""
    run_dir = tmp_path / "run"
    quiet = [
        "total_env_steps=3000",
        "checkpoint_interval_env_steps=200",
        "test_episodes=0",
        "log_interval_env_steps=100000",
    ]
    proc = _start("train", "qmix", "two_step", *quiet, "--run-dir", str(run_dir), cwd=tmp_path)
    _wait_for(run_dir / "checkpoint.pt", proc)
    proc.kill()
    proc.communicate()
    assert not (run_dir / "metrics.jsonl").exists()
    out = _cli("train", "--resume", str(run_dir), "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert read_metrics(run_dir)[-1]["env_steps"] >= 3000


def test_resume_checks_the_metrics_file_against_the_checkpoint(tmp_path: Path) -> None:
    train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path, progress=False)
    meta = (tmp_path / "metadata.json").read_bytes()
    metrics = tmp_path / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0])  # shortened
    out = _cli("train", "--resume", str(tmp_path), "total_env_steps=1500", cwd=tmp_path)
    assert out.returncode == 2
    assert f"holds 1 of the {len(lines)} rows its checkpoint expects" in _one_line(out.stderr)
    metrics.unlink()  # missing
    out = _cli("train", "--resume", str(tmp_path), "total_env_steps=1500", cwd=tmp_path)
    assert out.returncode == 2 and "is missing but the checkpoint expects" in out.stderr
    assert (tmp_path / "metadata.json").read_bytes() == meta  # no bogus `resumed` entry


def test_stale_temporary_files_are_removed_on_the_next_start(tmp_path: Path) -> None:
    train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path, progress=False)
    stale = tmp_path / ".checkpoint.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    qmix.resume(tmp_path, progress=False, total_env_steps=1500)
    assert not stale.exists()


def test_restart_in_place_only_without_a_checkpoint(tmp_path: Path) -> None:
    cfg = qmix.make_config("vdn", "climbing", ["total_env_steps=200"])
    train(cfg, run_dir=tmp_path, progress=False)
    out = _cli("train", "--restart", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "--resume" in _one_line(out.stderr)
    before = read_metrics(tmp_path)
    (tmp_path / "checkpoint.pt").unlink()  # as if killed before its first checkpoint
    (tmp_path / "model.pt").unlink()
    run = qmix.restart(tmp_path, progress=False)
    assert [r["env_steps"] for r in run.metrics] == [r["env_steps"] for r in before]
    assert "restarted" in json.loads((tmp_path / "metadata.json").read_text())


def test_a_seeds_parent_passes_sigterm_to_its_children_and_waits(tmp_path: Path) -> None:
    base = tmp_path / "cmp"
    proc = _start(
        "train",
        "qmix",
        "two_step",
        *SLOW,
        "--seeds",
        "0-1",
        "--jobs",
        "2",
        "--run-dir",
        str(base),
        cwd=tmp_path,
    )
    for seed in (0, 1):
        _wait_for(base / f"qmix_two_step_seed{seed}" / "metrics.jsonl", proc)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, stdout
    for seed in (0, 1):
        run_dir = base / f"qmix_two_step_seed{seed}"
        assert (run_dir / "checkpoint.pt").exists()
        assert f"seed {seed}: stopped with a checkpoint" in stdout


def test_a_stop_signal_saves_a_checkpoint_when_the_output_pipe_is_gone(tmp_path: Path) -> None:
    """Regression: a run whose parent died (its stderr a broken pipe) and that is then asked to
    stop crashed in the signal handler's message (BrokenPipeError) instead of saving its
    checkpoint: a benchmark's seeds lost their progress at a session's end."""
    run_dir = tmp_path / "run"
    proc = _start("train", "qmix", "two_step", *SLOW, "--run-dir", str(run_dir), cwd=tmp_path)
    _wait_for(run_dir / "metrics.jsonl", proc)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone: the next write gets EPIPE
    proc.stderr.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143  # stopped by SIGTERM, as with a reader
    assert not (run_dir / "error.log").exists()
    assert load_checkpoint(run_dir / "checkpoint.pt")["loop"]["env_steps"] > 0


# -- 3. nothing trains on garbage -------------------------------------------------------------
def test_a_diverging_run_stops_with_one_line_and_keeps_its_last_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["lr=100", "optimizer=adam", "grad_norm_clip=1e9", "total_env_steps=20000"]
    out = _cli("train", "qmix", "two_step", *args, "--run-dir", str(run_dir), cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    line = _one_line(out.stderr)
    assert "training diverged at env step" in line and "lower lr" in line
    assert not (run_dir / "model.pt").exists()  # no NaN networks saved as the result
    for name in ("checkpoint.pt", "model_best.pt"):
        if (run_dir / name).exists():
            for state in _networks(run_dir, name).values():
                assert all(torch.isfinite(t).all() for t in state.values())
    assert "DivergenceError" in (run_dir / "error.log").read_text()


def test_an_environment_returning_nan_stops_the_run(tmp_path: Path) -> None:
    run_dir, out = _faulty_run(tmp_path, "env_args.fault=nan_reward")
    assert out.returncode == 1
    line = _one_line(out.stderr)
    assert "non-finite reward" in line and str(run_dir / "error.log") in line
    assert not (run_dir / "model.pt").exists()


# -- 4. a run directory is not a way to run code ----------------------------------------------
def test_a_run_directory_does_not_run_its_config_code_unless_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared run directory whose config names `module:factory` ran that module's code."""
    marker = tmp_path / "ran"
    code = tmp_path / "code"
    code.mkdir()
    (code / "evil.py").write_text(  # its import is the attack: it runs before any check could
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from tests.faulty_env import make\n"
    )
    monkeypatch.syspath_prepend(str(code))
    run_dir = tmp_path / "run"
    cfg = qmix.make_config("qmix", "evil:make", ["total_env_steps=100", "test_episodes=0"])
    train(cfg, run_dir=run_dir, progress=False)  # a consistent run directory, as shared
    marker.unlink()
    for args in (
        ["eval", str(run_dir)],
        ["train", "--resume", str(run_dir), "total_env_steps=200"],
    ):
        out = _cli(*args, cwd=code)  # even run from the module's own folder
        assert out.returncode == 2, out.stderr
        assert "would import and run that module's code: pass --trust-env" in out.stderr
        assert not marker.exists()
    # trusted, the module must still be importable: the working directory is not on the path
    out = _cli("eval", str(run_dir), "--trust-env", cwd=code)
    assert out.returncode == 2 and "cannot import module 'evil'" in out.stderr
    assert not marker.exists()
    # trusted and importable (the user's own PYTHONPATH), it runs
    env = {**_env(), "PYTHONPATH": f"{_env()['PYTHONPATH']}{os.pathsep}{code}"}
    out = _cli("eval", str(run_dir), "--episodes", "2", "--trust-env", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert marker.exists()


def test_gymnasium_ids_that_import_a_module_need_trust(tmp_path: Path) -> None:
    from qmix.run import require_trusted_env

    cfg = qmix.Config(env="gymnasium", env_args={"key": "evil:Env-v0"})
    with pytest.raises(ConfigError, match="'evil:Env-v0'"):
        require_trusted_env(cfg, False, tmp_path)
    require_trusted_env(cfg, True, tmp_path)
    require_trusted_env(qmix.make_config("qmix", "lbf_8x8_2p_2f_coop"), False, tmp_path)


# -- 5. what ran is what is recorded ----------------------------------------------------------
def test_a_hand_edited_config_is_refused_or_accepted_and_recorded(tmp_path: Path) -> None:
    train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path, progress=False)
    path = tmp_path / "config.yaml"
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "lr": 0.1}))
    out = _cli("train", "--resume", str(tmp_path), "total_env_steps=1500", cwd=tmp_path)
    assert out.returncode == 2 and "lr 0.0005 -> 0.1" in _one_line(out.stderr)
    with pytest.raises(CheckpointError, match="trained with another config"):
        qmix.load(tmp_path)  # eval would report the edited config
    out = _cli(
        "train",
        "--resume",
        str(tmp_path),
        "total_env_steps=1500",
        "--accept-config-change",
        "--quiet",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["resumed"][-1]["config_changes"] == {"lr": [0.0005, 0.1]}
    assert meta["resumed"][-1]["total_env_steps"] == 1500
    assert yaml.safe_load(path.read_text())["total_env_steps"] == 1500
    assert qmix.load(tmp_path, best=True).config.lr == 0.1  # the change is on record


def test_a_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    for name in ("a", "b"):  # the same config twice: same shapes, same everything but the run
        train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path / name, progress=False)
    for name in ("checkpoint.pt", "model.pt"):
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    with pytest.raises(CheckpointError, match="belongs to another run"):
        qmix.load(tmp_path / "b")
    out = _cli("train", "--resume", str(tmp_path / "b"), "total_env_steps=1500", cwd=tmp_path)
    assert out.returncode == 2 and "belongs to another run" in _one_line(out.stderr)


def test_flipped_bytes_inside_tensor_data_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"weights": torch.arange(4096, dtype=torch.float32)})
    data = bytearray(path.read_bytes())
    at = data.find(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[400:432])
    assert at > 0
    data[at + 5] ^= 0x10  # inside the tensor's bytes: the zip container does not notice
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match its checksum"):
        load_checkpoint(path)
    assert path.read_bytes() == bytes(data)  # left untouched


# -- 6. every error a user can cause or meet is one clear line --------------------------------
@pytest.fixture
def tiny_mount(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (needs root, as CI has); skipped where it cannot be mounted."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tiny_mount: Path) -> None:
    run_dir = tiny_mount / "run"
    # tensorboard off and a short run: its first files fit, a checkpoint of the growing
    # buffer soon does not
    out = _cli(
        "train",
        "qmix",
        "two_step",
        "total_env_steps=100000",
        "tensorboard=false",
        "checkpoint_interval_env_steps=200",
        "--run-dir",
        str(run_dir),
        cwd=tiny_mount,
    )
    assert out.returncode == 2, out.stderr
    assert "disk full" in _one_line(out.stderr)
    assert not list(run_dir.glob(".*.tmp"))
    if (run_dir / "checkpoint.pt").exists():
        load_checkpoint(run_dir / "checkpoint.pt")  # the last good one is whole


def test_a_read_only_disk_is_one_line_and_writes_nothing(tiny_mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_mount)], check=True)
    out = _cli(
        "train", "qmix", "two_step", "runs_dir=" + str(tiny_mount / "runs"), cwd=tiny_mount.parent
    )
    assert out.returncode == 2
    assert "read-only file system" in _one_line(out.stderr)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run-dir", "a_file"], "a file is in the way"),
        (["--run-dir", "x" * 300], "file name too long"),
        (["seed=-1"], "seed must be in [0, 4294967295]"),
        (["lr=1e400"], "lr must be a finite float"),
        (["device=cuda"], "sees no CUDA device"),
        (["buffer_capacity_episodes=100000000000"], "need"),
        (["mixer=vdn"], "would mislabel the run"),
        (["--seeds", "0-100000"], "more than 1000 seeds"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    if "device=cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "a_file").write_text("not a folder")
    out = _cli("train", "qmix", "two_step", *args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in _one_line(out.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


def test_absurd_evaluations_are_refused(tmp_path: Path) -> None:
    train(qmix.make_config("vdn", "climbing", ["total_env_steps=100"]), tmp_path, progress=False)
    out = _cli("eval", str(tmp_path), "--episodes", "100000000", cwd=tmp_path)
    assert out.returncode == 2 and "episodes must be in [1, 1000000]" in _one_line(out.stderr)


def test_an_environment_exception_keeps_its_traceback(tmp_path: Path) -> None:
    run_dir, out = _faulty_run(tmp_path, "env_args.fault=raise_step")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert "raised ValueError in step(): injected fault" in last
    assert "faulty_env.py" in out.stderr  # the environment's own traceback is shown ...
    assert "faulty_env.py" in (run_dir / "error.log").read_text()  # ... and saved
    assert "config" not in last.lower()  # not disguised as a config error


def test_a_worker_failure_is_one_line_with_its_traceback_saved(tmp_path: Path) -> None:
    run_dir, out = _faulty_run(tmp_path, "env_args.fault=raise_step", "env_workers=1")
    assert out.returncode == 1
    assert "worker 0 failed" in _one_line(out.stderr)
    assert "faulty_env.py" in (run_dir / "error.log").read_text()


def test_a_hanging_environment_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    _, out = _faulty_run(tmp_path, "env_args.fault=hang_step", "worker_timeout_seconds=1")
    assert out.returncode == 1
    assert "did not return within 1 s" in _one_line(out.stderr)


def test_check_env_never_ends_in_a_traceback(tmp_path: Path) -> None:
    for fault in ("raise_step", "raise_init", "nan_obs", "obs_shape"):
        out = _cli("check-env", FAULTY, f"fault={fault}", cwd=tmp_path)
        assert out.returncode == 2, (fault, out.stdout)
        assert out.stderr.strip().splitlines()[-1].startswith(f"qmix: check-env {FAULTY}:"), fault


def test_describe_os_error_names_the_cause() -> None:
    err = OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoint.pt")
    assert describe_os_error(err).startswith("/runs/x/checkpoint.pt: disk full; free some space")
