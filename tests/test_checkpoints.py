"""Checkpoint pruning on the storage (``bench.tune.CheckpointPruner``): an old checkpoint is
deleted only once no experiment snapshot can still name it, so --resume always finds the one
it restores (with Ray's own ``num_to_keep=2`` a Ctrl-C could leave a snapshot naming a
checkpoint already deleted); at the end of a sweep each trial keeps its newest two."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ray.tune import Checkpoint

from bench.tune import CheckpointPruner


def _save(trial_dir: Path, index: int) -> Checkpoint:
    folder = trial_dir / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(b"x")
    return Checkpoint.from_directory(str(folder))


def _left(trial_dir: Path) -> list[str]:
    return sorted(p.name for p in trial_dir.iterdir())


def test_a_superseded_checkpoint_outlives_the_snapshots_that_may_name_it(tmp_path: Path,
                                                                      monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("bench.tune.time.monotonic", lambda: clock[0])
    pruner = CheckpointPruner(keep=2, grace_s=60.0)
    trial = SimpleNamespace(trial_id="t0", checkpoint=None)
    for i in range(5):  # five epochs within a second: every one may still be in a snapshot
        trial.checkpoint = _save(tmp_path / "t0", i)
        pruner.on_checkpoint(iteration=i, trials=[trial], trial=trial, checkpoint=trial.checkpoint)
        clock[0] += 0.2
    assert len(_left(tmp_path / "t0")) == 5
    clock[0] += 61.0  # a minute later the older three are past any snapshot
    trial.checkpoint = _save(tmp_path / "t0", 5)
    pruner.on_checkpoint(iteration=5, trials=[trial], trial=trial, checkpoint=trial.checkpoint)
    assert _left(tmp_path / "t0") == ["checkpoint_000004", "checkpoint_000005"]


def test_the_end_of_a_sweep_leaves_each_trial_its_newest_two(tmp_path: Path) -> None:
    trials = []
    for name, count in (("a", 6), ("b", 1)):
        for i in range(count):  # e.g. left from a run before a Ctrl-C: never seen by this pruner
            latest = _save(tmp_path / name, i)
        trials.append(SimpleNamespace(trial_id=name, checkpoint=latest))
    trials.append(SimpleNamespace(trial_id="never", checkpoint=None))
    CheckpointPruner(keep=2).on_experiment_end(trials=trials)
    assert _left(tmp_path / "a") == ["checkpoint_000004", "checkpoint_000005"]
    assert _left(tmp_path / "b") == ["checkpoint_000000"]
