"""benchmarks/mixer_saturation.py: measuring the mixer leaves the run as it was."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from qmix.config import make_config
from qmix.trainer import train
from tests.conftest import BENCHMARKS, load_benchmark


@pytest.fixture
def saturation(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports benchmarks/mixer_input.py
    return load_benchmark("mixer_saturation")


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]


@pytest.mark.parametrize("algo", ["qmix", "ow_qmix"])
def test_a_measured_run_is_the_plain_run(saturation: ModuleType, tmp_path: Path, algo: str) -> None:
    """The measurements draw no random numbers and change no weight: every logged number of
    a measured QMIX (or OW-QMIX) run equals the plain run's; and they are what they say."""
    cfg = make_config(algo, "two_step", ["total_env_steps=600", "seed=3"])
    plain = train(cfg, tmp_path / "plain", progress=False)
    rows: list[dict[str, Any]] = []
    with saturation.measured(rows):
        train(cfg, tmp_path / "measured", progress=False)
    assert _metrics(tmp_path / "measured") == _metrics(tmp_path / "plain")
    updates = [r["updates"] for r in plain.metrics if "updates" in r][-1]
    assert [r["update"] for r in rows] == list(range(50, updates + 1, 50))
    for row in rows:
        assert row["gain_mean"] >= 0 and row["gain_p99"] >= 0  # monotonic mixing
        assert 0 < row["elu_slope"] <= 1 and 0 <= row["agent_grad_share"] <= 1 + 1e-6


def test_report_reads_the_records_and_draws(
    saturation: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    """The study's records in one figure; a changed run (a remedy tried) in another, beside
    the study's run of its variant and seed."""
    records = tmp_path / "records"
    records.mkdir()
    for path in saturation.RECORDED.glob("mpe_spread_*_seed0.json"):
        (records / path.name).write_text(path.read_text())
    changed = json.loads((records / "mpe_spread_state_seed0.json").read_text())
    changed["changes"] = ["hypernet_layers=2"]
    (records / "mpe_spread_state_seed0_hypernet_layers-2.json").write_text(json.dumps(changed))
    monkeypatch.setattr(saturation, "RECORDED", records)
    monkeypatch.setattr(saturation, "IMAGES", tmp_path)
    monkeypatch.setattr(saturation, "ROOT", tmp_path)
    saturation.report("mpe_spread")
    out = capsys.readouterr().out
    assert (tmp_path / "mixer_saturation_mpe_spread.png").stat().st_size > 10_000
    assert (tmp_path / "mixer_saturation_mpe_spread_changed.png").stat().st_size > 10_000
    assert "state seed 0:" in out and "DIFFERS" not in out
    assert "state seed 0 hypernet_layers=2:" in out and "not a run of the study" in out
    assert "ELU slope below 0.05" in out
    with pytest.raises(SystemExit, match="no records"):
        saturation.report("lbf_8x8")
    with pytest.raises(SystemExit, match="no records"):
        saturation.report("mpe_spread", "ow_qmix")  # another algorithm's runs are apart


def test_only_a_qmix_mixer_is_measured(saturation: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not QMIX's"):
        saturation.run_one("lbf_8x8", "state", 0, 100, tmp_path, [], "qplex")
    name = saturation.record_path("smax_2s3z", "obs_concat", 0, ["hypernet_layers=2"], "ow_qmix")
    assert name.name == "smax_2s3z_ow_qmix_obs_concat_seed0_hypernet_layers-2.json"
    assert (
        saturation.record_path("mpe_spread", "state", 1, []).name == "mpe_spread_state_seed1.json"
    )
