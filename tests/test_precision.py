"""``precision: auto`` on a CPU follows a measured, cached check (``bench.precision``), never
the device type alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import precision
from bench.trainer import TrainSpec, execution


@pytest.fixture(autouse=True)
def _fresh_memo():
    precision._MEMO.clear()
    yield
    precision._MEMO.clear()


def test_check_measures_once_then_reads_the_cache(tmp_path: Path, monkeypatch) -> None:
    # the key of an uncapped oneDNN first, whatever cap the suite itself runs under
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    first = precision.cpu_check(tmp_path)
    assert not first["cached"] and first["fp32_ms"] > 0 and first["bf16_ms"] > 0
    assert first["bf16"] == (first["speedup"] >= precision.MIN_SPEEDUP)
    saved = json.loads((tmp_path / precision.CACHE_FILE).read_text())
    key = precision.cache_key()
    assert "torch " in key and "threads" in key and saved[key]["bf16"] == first["bf16"]
    # oneDNN held to AVX2 is another machine as far as bf16 goes
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision.cache_key() != key and precision.cache_key().endswith("onednn avx2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")

    precision._MEMO.clear()  # a new process: the file answers, nothing is measured again

    def boom(*_a, **_k):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(precision, "measure", boom)
    again = precision.cpu_check(tmp_path)
    assert again["cached"] and again["bf16"] == first["bf16"]


@pytest.mark.parametrize("faster", [True, False])
def test_auto_on_cpu_follows_the_check(tmp_path: Path, faster: bool) -> None:
    key = precision.cache_key()
    (tmp_path / precision.CACHE_FILE).write_text(json.dumps(
        {key: {"fp32_ms": 10.0, "bf16_ms": 5.0 if faster else 20.0,
               "speedup": 2.0 if faster else 0.5, "bf16": faster}}))
    ex = execution(TrainSpec(device="cpu", precision="auto"), str(tmp_path))
    assert ex.bf16 is faster
    # Explicit precisions are never overridden by the check.
    assert execution(TrainSpec(device="cpu", precision="fp32"), str(tmp_path)).bf16 is False
    assert execution(TrainSpec(device="cpu", precision="bf16"), str(tmp_path)).bf16 is True


def test_corrupt_or_unwritable_cache_still_decides(tmp_path: Path) -> None:
    (tmp_path / precision.CACHE_FILE).write_text("{not json")
    out = precision.cpu_check(tmp_path)
    assert isinstance(out["bf16"], bool) and not out["cached"]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        precision._MEMO.clear()
        assert isinstance(precision.cpu_check(ro / "sub")["bf16"], bool)
    finally:
        ro.chmod(0o700)


def test_trial_env_records_the_precision_that_ran(tiny_trial) -> None:
    from bench.trainer import train

    res = train(tiny_trial(train={"epochs": 1, "precision": "fp32"}))
    assert res.env["precision"] == "fp32" and res.env["channels_last"] in ("true", "false")
    assert res.env["torch_threads"] == "1"
