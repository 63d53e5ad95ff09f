"""Security: YAML is read with a safe loader (a ``!!python`` tag is refused, its code never
runs), checkpoints are loaded with ``weights_only=True`` on every resume path (a pickled object
in a checkpoint is refused, its code never runs), and secrets never reach MLflow params or tags.
That the HTML report escapes untrusted strings is tested in ``tests/test_report.py``
(``test_untrusted_strings_are_escaped``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bench.errors import ConfigError
from bench.space import load_space


class Payload:
    """Unpickling this creates a folder: the proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.mkdir", "!!python/object/new:os.mkdir",
                                 "!!python/name:os.mkdir", "!!python/object:os.stat_result"])
def test_yaml_python_tags_are_refused_and_never_run(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "space.yaml"
    path.write_text(f"name: t\ntrain:\n  epochs: {tag} ['{marker}']\n")
    with pytest.raises(ConfigError) as info:
        load_space(path)
    msg = str(info.value)
    assert "unsupported YAML tag" in msg and "line 3" in msg and "safe loader" in msg, msg
    assert tag.split(":", 1)[0].lstrip("!") in msg
    assert not marker.exists()


def _malicious_checkpoint(folder: Path, marker: Path) -> Path:
    folder.mkdir()
    torch.save({"format": 1, "epoch": 1, "payload": Payload(marker)}, folder / "state.pt")
    return folder


def test_sweep_resume_path_refuses_a_pickled_object(tmp_path: Path) -> None:
    from ray.tune import Checkpoint

    from bench.tune import _load_checkpoint

    marker = tmp_path / "pwned"
    ckpt = Checkpoint.from_directory(str(_malicious_checkpoint(tmp_path / "ckpt", marker)))
    try:
        _load_checkpoint(ckpt)
    except Exception:  # noqa: BLE001 - refused: the wanted outcome, if nothing ran
        pass
    else:
        pytest.fail("a checkpoint holding a pickled object was loaded")
    finally:
        ran = marker.exists()
    assert not ran, "loading the checkpoint ran code from it"


def test_train_resume_path_refuses_a_pickled_object(tmp_path: Path, capsys) -> None:
    from launchers.train import main

    marker = tmp_path / "pwned"
    ckpt = _malicious_checkpoint(tmp_path / "ckpt", marker) / "state.pt"
    try:
        rc = main(["--arch", "resnet8", "--set", "arch.width=4", "--set", "data.subset=100",
                   "--set", "data.image_size=8", "--set", "train.epochs=1", "--set",
                   "train.device=cpu", "--set", "train.threads=1", "--quiet",
                   "--resume", str(ckpt)])
    except SystemExit as exc:
        rc = exc.code
    except Exception as exc:  # noqa: BLE001
        rc = f"raised {type(exc).__name__}"
    ran = marker.exists()
    assert not ran, "loading the checkpoint ran code from it"
    assert rc == 2, rc
    assert "Traceback" not in capsys.readouterr().err


def test_trainer_checkpoints_load_with_weights_only(tiny_trial) -> None:
    """What makes refusing pickles safe: a real trainer checkpoint needs no pickle."""
    import io

    from bench.trainer import train

    states: list = []
    spec = tiny_trial(train={"epochs": 1}, data={"subset": 100, "test_subset": 50,
                                                 "image_size": 8})
    train(spec, report=lambda m, state: states.append(state()))
    buf = io.BytesIO()
    torch.save(states[-1], buf)
    buf.seek(0)
    state = torch.load(buf, map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and "model" in state


SECRETS = {
    "db.password": "hunter2-pw",
    "api_token": "tok-0123456789",
    "aws_secret_access_key": "AKIA-s3cr3t-value",
    "wandb.api_key": "k-9876543210",
    "client_secret": "cs-abcdef",
}


def test_secrets_are_redacted_from_params_and_tags(tmp_path: Path) -> None:
    from bench.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "secrets")
    run_id = tracker.client.create_run(tracker.setup()).info.run_id
    tracker.log_params(run_id, {**SECRETS, "train.lr": 0.1, "arch.depth": 8})
    tracker.log_tags(run_id, {**{f"resbench.env.{k}": v for k, v in SECRETS.items()},
                              "resbench.label": "resnet8-basic-identity-w4"})
    data = tracker.client.get_run(run_id).data
    logged = " ".join([*data.params.values(), *data.tags.values()])
    leaked = [v for v in SECRETS.values() if v in logged]
    assert not leaked, f"secrets logged verbatim: {leaked}"
    assert set(SECRETS) <= set(data.params)  # the keys stay, their values are hidden
    assert data.params["train.lr"] == "0.1" and data.params["arch.depth"] == "8"
    assert data.tags["resbench.label"] == "resnet8-basic-identity-w4"
