"""The best trials of a finished sweep, ready to reuse: which they are (``best_trials``), their
trained weights as a self-contained classifier (``Classifier``: the data's normalisation
included) logged as MLflow PyTorch models with a signature and optionally registered
(``export_best``), and the best one's spec as a YAML that ``launchers.train --config`` trains.

Only fully trained search trials qualify (a trial stopped early holds partial weights): the best
by the primary objective, or with several objectives the Pareto set of those trials. MLflow is
written through ``bench.tracking``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.pareto import nondominated_fronts, oriented
from bench.space import SearchSpace, decode

MODEL_NAME = "model"  # the logged model's name in its run: runs:/<run id>/model
BEST_YAML = "best.yaml"


class Classifier(nn.Module):
    """A trained network behind the input normalisation of its training data: float32 pixels
    in 0..255, NCHW, in; logits out."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", 255.0 * torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", 255.0 * torch.tensor(list(std)).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images.float() - self.mean) / self.std)


@dataclass
class Exported:
    """One best trial as logged: its run, its model's URI, its registered version."""

    trial_id: str
    label: str
    run_id: str
    model_uri: str
    version: str | None


def best_trials(space: SearchSpace, found: Sequence[Any]) -> list[Any]:
    """The fully trained search trials worth keeping, best first: the best one by the primary
    objective, or the Pareto set with several objectives (``bench.record.TrialRecord`` rows)."""
    from bench.tune import placeholders

    objectives = dict(space.search.objectives)
    metric, mode = space.search.primary
    done = [o for o in found if o.kind == "search" and o.status == "completed"
            and getattr(o, "checkpoint", None) is not None
            and all(k in o.metrics and k not in placeholders(o.metrics) for k in objectives)]
    if not done:
        return []
    done.sort(key=lambda o: float(o.metrics[metric]), reverse=(mode == "max"))
    if len(objectives) == 1:
        return done[:1]
    front = set(nondominated_fronts([oriented(o.metrics, objectives) for o in done])[0])
    return [o for i, o in enumerate(done) if i in front]


def trained_model(space: SearchSpace, outcome: Any) -> tuple[Classifier, Any]:
    """(the trial's trained ``Classifier`` in eval mode, its arch fitted to the data) from its
    last checkpoint and the env its reports carried (shape, classes, normalisation)."""
    from bench.models import build_model
    from bench.tune import _load_checkpoint, ran_env

    env = ran_env(outcome.metrics)
    spec = decode(space, outcome.config)
    arch = dataclasses.replace(spec.arch, in_chans=int(env["in_chans"]),
                               input_size=int(env["input_size"]),
                               num_classes=int(env["num_classes"]))
    net = build_model(arch)
    net.load_state_dict(_load_checkpoint(outcome.checkpoint)["model"])
    mean = [float(v) for v in env["data_mean"].split(",")]
    std = [float(v) for v in env["data_std"].split(",")]
    return Classifier(net, mean, std).eval(), arch


def _requirements() -> list[str]:
    import timm

    return [f"torch=={torch.__version__.split('+')[0]}", f"timm=={timm.__version__}"]


def export_best(tracker: Any, parent_id: str, space: SearchSpace, found: Sequence[Any],
                register: str | None = None) -> list[Exported]:
    """Log each of ``best_trials`` as an MLflow PyTorch model in its child run (a version of
    ``register`` when given); a run that holds a model already keeps it (a resumed sweep)."""
    out = []
    for o in best_trials(space, found):
        run = tracker.find_trial(parent_id, o.trial_id)
        if run is None:
            continue
        held = tracker.logged_model(run.info.run_id, MODEL_NAME)
        if held is not None:
            out.append(Exported(o.trial_id, o.label, run.info.run_id, held, None))
            continue
        model, arch = trained_model(space, o)
        example = torch.rand(2, arch.in_chans, arch.input_size, arch.input_size,
                             generator=torch.Generator().manual_seed(0)) * 255.0
        uri, version = tracker.log_pytorch_model(
            run.info.run_id, model, example, MODEL_NAME, register,
            metadata={"resbench.trial_id": o.trial_id, "resbench.label": o.label,
                      "input": "float32 pixels in 0..255, NCHW "
                               f"({arch.in_chans}x{arch.input_size}x{arch.input_size})",
                      "output": f"logits of {arch.num_classes} classes"},
            pip_requirements=_requirements())
        out.append(Exported(o.trial_id, o.label, run.info.run_id, uri, version))
    return out


def write_best_yaml(space: SearchSpace, outcome: Any, folder: Path) -> Path:
    """The trial's spec as ``folder/best.yaml`` (``launchers.train --config`` trains it)."""
    from bench.jsonio import write_atomic
    from bench.tune import trial_yaml

    path = folder / BEST_YAML
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, trial_yaml(decode(space, outcome.config)))
    return path


def lines(exported: Sequence[Exported], yaml_path: Path | None, register: str | None
          ) -> list[str]:
    """What the end of a sweep prints about its best trials."""
    out = []
    for e in exported:
        reg = f", registered as {register} version {e.version}" if e.version else ""
        out.append(f"best model: trial {e.trial_id} ({e.label}) logged as {e.model_uri}{reg}; "
                   f"load it with mlflow.pytorch.load_model('{e.model_uri}')")
    if yaml_path is not None:
        out.append(f"best config: {yaml_path}  (train it: python -m launchers.train --config "
                   f"{yaml_path})")
    return out


__all__ = ["BEST_YAML", "MODEL_NAME", "Classifier", "Exported", "best_trials", "export_best",
           "lines", "trained_model", "write_best_yaml"]
