"""The trial spec as a user writes it for ``python -m launchers.train``: a YAML file (within the
limits of every YAML file resbench reads), less the ``--unset`` keys, the ``--arch`` shorthand
(``resnet20``, ``wrn28-10``, ``timm:resnet50``, a canonical name) and the ``--set`` overrides,
as plain data for ``bench.trainer.parse_trial``; and the progress and summary lines it prints."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.config import apply_overrides, load_yaml, parse_override, remove_keys
from bench.errors import ConfigError

# Flat arch keys that a structured arch (with stages) would silently ignore.
_FLAT_ONLY = {"depth", "block", "width", "widen", "bc", "model"}


def arch_shorthand(name: str) -> dict[str, Any]:
    """``--arch NAME`` as flat arch parameters."""
    from bench.models import CANONICAL

    if name in CANONICAL or name.startswith("timm:"):
        return {"model": name}
    m = re.fullmatch(r"(resnet|plain|densenet)(\d+)", name)
    if m:
        return {"family": m.group(1), "depth": int(m.group(2))}
    m = re.fullmatch(r"wrn-?(\d+)-(\d+)", name)
    if m:
        return {"family": "wrn", "depth": int(m.group(1)), "widen": int(m.group(2))}
    raise ConfigError(
        f"unknown model shorthand {name!r}; valid: {', '.join(CANONICAL)}, resnet<depth>, "
        "plain<depth>, densenet<depth>, wrn<depth>-<k>, timm:<name>",
        "--arch",
    )


def load_spec_data(config: str | None, arch: str | None, overrides: Sequence[str],
                   unset: Sequence[str] = ()) -> dict[str, Any]:
    """The spec as plain data: the YAML file less the --unset keys, then --arch, then the --set
    overrides."""
    data: dict[str, Any] = {}
    if config:
        path = Path(config)
        try:
            path.stat()
        except OSError as exc:
            raise ConfigError(f"cannot read the config file: {exc.strerror}", source=config) from None
        # Within the limits of every YAML file resbench reads (size, nesting, aliases, no
        # duplicate keys, UTF-8 text): a hostile config is one message, never a hang.
        loaded = load_yaml(path, "config file")
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError("expected a mapping (arch, data, train, ...) at the top level", source=config)
        data = dict(loaded or {})
    if unset:
        try:
            data = remove_keys(data, unset)
        except ConfigError as exc:
            raise exc.at(source=f"{config or 'the spec'} (--unset)") from None
    if arch:
        data["arch"] = arch_shorthand(arch)
    data = apply_overrides(data, overrides)
    arch_data = data.get("arch")
    if isinstance(arch_data, Mapping) and "stages" in arch_data:
        flat = sorted(
            k for k, _ in map(parse_override, overrides)
            if k.startswith("arch.") and k.split(".")[1] in _FLAT_ONLY
        )
        if flat:
            raise ConfigError(
                f"{', '.join(flat)} would be ignored: the arch is in the structured form (with "
                "stages); edit arch.stages, or give the arch in the flat form (--arch NAME, or "
                "arch: {depth: ..., block: ..., skip: ...})",
                flat[0],
            )
    return data


def progress_line(spec: Any, metrics: Mapping[str, float]) -> str:
    epoch = int(metrics["epoch"])
    parts = [
        f"epoch {epoch:>3}/{spec.train.epochs}",
        f"loss {metrics['train_loss']:.4f}",
        f"train {metrics['train_acc']:5.1f}%",
    ]
    if "val_acc" in metrics:
        parts.append(f"val {metrics['val_acc']:5.1f}% (loss {metrics['val_loss']:.4f})")
    if "test_acc" in metrics:
        parts.append(f"test {metrics['test_acc']:5.1f}%")
    parts += [
        f"lr {metrics['lr']:.4g}",
        f"{metrics['epoch_time_s']:.1f}s",
        f"{metrics['train_img_per_s']:.0f} img/s",
    ]
    return "  ".join(parts)


# The final numbers the summary shows, in this order, when the trial has them.
SUMMARY_KEYS = ("val_acc", "test_acc", "test_top5", "val_loss", "test_loss", "params", "macs",
                "train_time_s", "train_img_per_s", "infer_img_per_s", "latency_ms_p50")


def summary(out: Mapping[str, Any], json_paths: Sequence[str]) -> list[str]:
    """A few lines for the end of a run: the outcome and its main numbers; the full result is
    what ``--json`` writes."""
    from bench.space import human

    metrics = out.get("metrics") or {}
    epochs = len(out.get("history") or [])
    lines = [f"{out['arch']} on {out['spec']['data']['name']}: {out['status']} after {epochs} "
             f"epoch(s)" + (f" ({out['message']})" if out.get("message") else "")]
    cells = []
    for key in SUMMARY_KEYS:
        value = metrics.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key in ("params", "macs"):
            cells.append(f"{key} {human(value)}")
        elif key.endswith("_acc") or key.endswith("_top5"):
            cells.append(f"{key} {value:.2f}%")
        elif key.endswith("_s") and not key.endswith("per_s"):
            cells.append(f"{key} {value:.1f}")
        else:
            cells.append(f"{key} {value:.4g}")
    for i in range(0, len(cells), 6):
        lines.append("  " + "  ".join(cells[i:i + 6]))
    written = [p for p in json_paths if p != "-"]
    lines.append(f"  full result: {', '.join(written)}" if written else
                 "  full result (history, diagnostics, environment, spec): add --json FILE")
    return lines
