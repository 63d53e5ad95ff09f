"""``python -m launchers.train``: run one trial from a spec, without Ray or MLflow.

    python -m launchers.train                                   # ResNet-20 on digits
    python -m launchers.train --arch resnet20 --set train.epochs=5
    python -m launchers.train --config trial.yaml --set arch.depth=56 --json out.json
    python -m launchers.train --arch resnet8 --json - | jq .metrics   # the JSON on stdout
    python -m launchers.train --set data.name=imagefolder --set data.root=DIR --set train.lr=0.2

``--config`` holds a TrialSpec mapping (arch, data, train, measure, diagnostics, name); the arch
may be structured (with ``stages``) or flat (``depth``, ``block``, ``skip``, ``width``, ``model``,
...: ``bench.models.arch_from_params``). ``--set key=value`` overrides any key (values are YAML).
A progress line per epoch goes to stderr, a short summary to stdout; the full result as JSON
goes to ``--json PATH`` (``--json -``: on stdout instead of the summary).
Exit status: 0 completed, 1 diverged or failed, 2 a configuration or data error (one message;
``--debug`` shows the traceback). Unset ``data.root`` / ``data.cache_dir`` are filled from the
RESBENCH_DATA / RESBENCH_CACHE environment variables (else the user cache folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from bench import plugins
from bench.config import to_dict
from bench.errors import ResbenchError
from bench.jsonio import finite, write_atomic
from bench.trial_config import load_spec_data, progress_line, summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launchers.train",
        description="Run one resbench trial (no Ray, no MLflow) and print a summary of its result.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE.yaml", help="a TrialSpec mapping (YAML)")
    p.add_argument(
        "--arch", metavar="NAME",
        help="model shorthand: resnet20, resnet56-b, plain20, densenet40, wrn16-4, resnet<depth>, "
        "plain<depth>, densenet<depth>, wrn<depth>-<k>, timm:<name>",
    )
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a spec key, e.g. train.lr=0.05, arch.depth=56, data.subset=5000 (repeatable)",
    )
    p.add_argument("--unset", action="append", default=[], metavar="KEY",
                   help="remove a key of the config file (its default applies) before the "
                        "--set overrides, e.g. train.milestones (repeatable)")
    p.add_argument("--json", metavar="PATH", action="append", default=[],
                   help="write the full result (metrics, history, diagnostics, environment, "
                        "spec) as JSON here, atomically; '-' prints it on stdout instead of "
                        "the summary (repeatable)")
    p.add_argument("--checkpoint", metavar="PATH", help="save a resumable checkpoint here after every epoch")
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint written by --checkpoint")
    p.add_argument("--print-spec", action="store_true", help="print the resolved spec as YAML and exit")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks for configuration errors")
    plugins.add_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.locations import resolve_paths
    from bench.trainer import load_checkpoint, parse_trial, train

    data = load_spec_data(args.config, args.arch, args.overrides, args.unset)
    spec = parse_trial(data, source=args.config or "")
    spec = dataclasses.replace(spec, data=resolve_paths(spec.data, os.environ))
    if args.print_spec:
        print(yaml.safe_dump(to_dict(spec), sort_keys=False), end="")
        return 0

    resume = load_checkpoint(args.resume, "--resume") if args.resume else None

    def report(metrics: dict[str, float], checkpoint: Any) -> None:
        if not args.quiet:
            print(progress_line(spec, metrics), file=sys.stderr, flush=True)
        if args.checkpoint:
            import io

            buf = io.BytesIO()
            torch.save(checkpoint(), buf)
            write_atomic(args.checkpoint, buf.getvalue())

    from bench.trainer import schedule_warnings

    for warning in schedule_warnings(spec.train):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    if not args.quiet:
        print(f"trial {spec.name or spec.arch.label} on {spec.data.name}", file=sys.stderr, flush=True)
    result = train(spec, report=report, resume=resume)
    out = {
        "name": spec.name,
        "arch": spec.arch.label,
        **{k: getattr(result, k) for k in ("status", "message", "metrics", "history",
                                           "diagnostics", "env")},
        "spec": to_dict(spec),
    }
    text = json.dumps(finite(out), indent=2)
    for path in args.json:
        if path != "-":
            write_atomic(path, text + "\n")
    print(text if "-" in args.json else "\n".join(summary(out, args.json)))
    if result.status != "completed":
        print(f"trial {result.status}: {result.message}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plugins.import_plugins(args.plugin, "--plugin")
        return run(args)
    except ResbenchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
