"""Runtime measurement (throughput, latency percentiles, out-of-memory halving) and the
environment capture."""

from __future__ import annotations

import re
import subprocess

import pytest
import torch
from torch import nn

from bench.measure import benchmark, environment, git_sha
from bench.models import build_model, cifar_resnet


def _tiny() -> nn.Module:
    return build_model(cifar_resnet(8, width=4))


def test_benchmark_reports_throughput_and_latency_without_touching_weights() -> None:
    model = _tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = benchmark(model, (3, 16, 16), "cpu", batch_size=8, warmup=1, iters=2, latency_iters=5, channels_last=True)
    assert {"infer_img_per_s", "train_step_img_per_s", "latency_ms_p50", "latency_ms_p90",
            "latency_ms_p99", "measure_batch_size"} <= set(out)
    assert out["infer_img_per_s"] > 0 and out["train_step_img_per_s"] > 0
    assert 0 < out["latency_ms_p50"] <= out["latency_ms_p90"] <= out["latency_ms_p99"]
    assert out["measure_batch_size"] == 8 and "measure_oom_retries" not in out
    assert "peak_mem_mb" not in out  # CUDA only
    assert model.training  # mode restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats and weights untouched


class _RunsOutOfMemoryAbove(nn.Module):
    """A model that raises CUDA's out-of-memory error for batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.fc = nn.Linear(12, 3)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.fc(x.flatten(1))


def test_out_of_memory_batch_is_halved_and_recorded() -> None:
    model = _RunsOutOfMemoryAbove(limit=10)
    out = benchmark(model, (3, 2, 2), "cpu", batch_size=64, warmup=0, iters=1, latency_iters=2)
    assert out["measure_batch_size"] == 8 and out["measure_oom_retries"] == 3
    assert model.seen[:3] == [64, 32, 16]
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):  # other errors propagate
        benchmark(nn.Linear(5, 2), (3, 2, 2), "cpu", batch_size=4, warmup=0, iters=1)


def test_environment_fields() -> None:
    env = environment("cpu")
    for key in ("python", "torch", "torchvision", "cuda", "cudnn", "device", "cpu", "git_sha", "platform"):
        assert isinstance(env[key], str) and env[key], key
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"


def test_git_sha_of_a_checkout_and_of_a_plain_folder(tmp_path) -> None:
    assert git_sha(tmp_path) == "unknown"
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "f.txt").write_text("a")
    subprocess.run([*git, "add", "f.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    sha = git_sha(repo)
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    (repo / "f.txt").write_text("b")
    assert git_sha(repo) == sha + "+dirty"
