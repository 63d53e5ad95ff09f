"""The one trial record, from plan to report: what a trial was (its spec, its name in a study or
a listed-trial file), how it ended (status and message) and what it measured (final metrics,
per-epoch history, diagnostics, the environment that ran it). A sweep's Ray results become
records (``bench.tune.outcomes``), a study's sequential run writes them, a study's results JSON
holds them (``as_dict`` / ``from_dict``) and its MLflow import reads them back. No torch, no
Ray, no MLflow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.jsonio import finite

# The keys of a record in a study's results JSON, in the order they are written.
JSON_KEYS = ("role", "label", "measure_only", "spec", "status", "message", "metrics", "history",
             "diagnostics", "env", "wall_time_s")


@dataclass
class TrialRecord:
    """One trial. ``trial_id`` is Ray's id in a sweep (a study's role when it ran in-process);
    ``role`` names a listed trial (a study's paper configuration); ``kind`` is search or
    reference; ``metrics`` are the final values (a sweep's: the trial's last Ray result, with
    Ray's own keys); ``config`` the Ray trial config; ``path`` and ``checkpoint`` where Ray
    kept the trial and its last weights."""

    trial_id: str
    kind: str
    config: dict[str, Any]
    label: str
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    path: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Any = None
    role: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    measure_only: bool = False

    @property
    def epochs(self) -> int:
        return int(self.metrics.get("epoch", 0) or 0)

    def as_dict(self) -> dict[str, Any]:
        """The results-JSON form (``JSON_KEYS``; non-finite numbers as null), read the same in
        memory as from the file (string keys)."""
        out = {k: getattr(self, k) for k in JSON_KEYS}
        out["role"] = self.role or self.trial_id
        return json.loads(json.dumps(finite(out), default=str))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """A record from its results-JSON form."""
        role = str(data.get("role", ""))
        return cls(trial_id=role, kind="reference" if data.get("measure_only") else "search",
                   config={}, label=str(data.get("label") or role),
                   status=str(data.get("status", "")), metrics=dict(data.get("metrics") or {}),
                   message=str(data.get("message") or ""),
                   history=list(data.get("history") or []), role=role,
                   spec=dict(data.get("spec") or {}),
                   diagnostics=dict(data.get("diagnostics") or {}),
                   env=dict(data.get("env") or {}),
                   wall_time_s=float(data.get("wall_time_s") or 0.0),
                   measure_only=bool(data.get("measure_only")))
