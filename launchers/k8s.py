"""Run a sweep on Kubernetes (KubeRay): render a RayJob, submit it, watch it.

    python -m launchers.k8s render --space S --image I --storage T [options] [-o FILE]
    python -m launchers.k8s submit (--space S --image I --storage T [options] | -f FILE)
    python -m launchers.k8s status NAME [-n NAMESPACE] [--json]
    python -m launchers.k8s logs NAME [-n NAMESPACE] [-f] [--head]

``render`` is offline. The other commands drive ``kubectl`` (current context, or ``--context``).
Options may also come from a YAML file (``--config job.yaml``, keys = the option names with
underscores); command-line options win. Mistakes exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.config import field_doc
from bench.errors import ConfigError, ResbenchError
from bench.k8s import RayJobSpec, dump_yaml, render_rayjob, spec_from_options
from bench.kubectl import logs, read_manifests, status, submit

# option -> (spec field, how the command-line text is read)
#   "yaml": a YAML scalar (numbers, booleans, null); "str": verbatim; "list": repeatable
OPTIONS: dict[str, tuple[str, str]] = {
    "--space": ("space", "str"),
    "--image": ("image", "str"),
    "--storage": ("storage", "str"),
    "--name": ("name", "str"),
    "--namespace": ("namespace", "str"),
    "--workers": ("workers", "yaml"),
    "--gpus-per-worker": ("gpus_per_worker", "yaml"),
    "--cpus": ("cpus", "yaml"),
    "--memory": ("memory", "str"),
    "--head-cpus": ("head_cpus", "yaml"),
    "--head-memory": ("head_memory", "str"),
    "--node-selector": ("node_selector", "list"),
    "--toleration": ("tolerations", "list"),
    "--head-node-selector": ("head_node_selector", "list"),
    "--head-toleration": ("head_tolerations", "list"),
    "--pvc": ("pvc", "str"),
    "--pvc-mount": ("pvc_mount", "str"),
    "--tracking-configmap": ("tracking_configmap", "str"),
    "--credentials-secret": ("credentials_secret", "str"),
    "--service-account": ("service_account", "str"),
    "--image-pull-policy": ("image_pull_policy", "str"),
    "--image-pull-secret": ("image_pull_secret", "str"),
    "--ray-version": ("ray_version", "str"),
    "--workdir": ("workdir", "str"),
    "--env": ("env", "list"),
    "--sweep-args": ("sweep_args", "str"),
    "--shutdown-after-job-finishes": ("shutdown_after_job_finishes", "yaml"),
    "--ttl-seconds-after-finished": ("ttl_seconds_after_finished", "yaml"),
    "--active-deadline-seconds": ("active_deadline_seconds", "yaml"),
    "--backoff-limit": ("backoff_limit", "yaml"),
}
METAVAR = {
    "--space": "FILE",
    "--workers": "N",
    "--gpus-per-worker": "N",
    "--cpus": "N",
    "--head-cpus": "N",
    "--memory": "QUANTITY",
    "--head-memory": "QUANTITY",
    "--node-selector": "KEY=VALUE",
    "--head-node-selector": "KEY=VALUE",
    "--toleration": "KEY[=VALUE][:EFFECT]",
    "--head-toleration": "KEY[=VALUE][:EFFECT]",
    "--env": "NAME=VALUE",
    "--sweep-args": "'ARGS'",
    "--shutdown-after-job-finishes": "BOOL",
    "--ttl-seconds-after-finished": "S",
    "--active-deadline-seconds": "S",
    "--backoff-limit": "N",
}
FLAG_OF = {field: flag for flag, (field, _) in OPTIONS.items()}


# ---------------------------------------------------------------------------------------------
# render


def spec_from_args(args: argparse.Namespace) -> RayJobSpec:
    """``--config`` (if any) under the command-line options, validated into a spec."""
    values = {field: (getattr(args, field), kind) for field, kind in OPTIONS.values()}
    return spec_from_options(args.config, values)


def cmd_render(args: argparse.Namespace) -> int:
    text = "---\n" + dump_yaml(render_rayjob(spec_from_args(args)))
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------------------------------
# kubectl (bench.kubectl)


def cmd_submit(args: argparse.Namespace) -> int:
    if args.file:
        given = [flag for flag, (field, _) in OPTIONS.items() if getattr(args, field) is not None]
        if given or args.config:
            raise ResbenchError(f"give either -f FILE or render options, not both ({given[:3]})")
        text, docs = read_manifests(args.file)
    else:
        manifest = render_rayjob(spec_from_args(args))
        text, docs = "---\n" + dump_yaml(manifest), [manifest]
    return submit(text, docs, args.context)


def cmd_status(args: argparse.Namespace) -> int:
    return status(args.name, args.namespace, args.context, args.json)


def cmd_logs(args: argparse.Namespace) -> int:
    return logs(args.name, args.namespace, args.context, args.follow, args.head)


# ---------------------------------------------------------------------------------------------
# command line


def _help(field: str, kind: str) -> str:
    text, default = field_doc(RayJobSpec, field)
    if kind == "list":
        return f"{text} (repeatable)"
    return f"{text} (default {default})" if default not in (None, "", ()) else text


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of options (keys with underscores)")
    for flag, (field, kind) in OPTIONS.items():
        short = ["-n"] if flag == "--namespace" else []
        parser.add_argument(
            *short,
            flag,
            dest=field,
            action="append" if kind == "list" else "store",
            metavar=METAVAR.get(flag, field.upper()),
            help=_help(field, kind),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m launchers.k8s", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="write the RayJob manifest (offline)")
    _add_job_options(render)
    render.add_argument("-o", "--output", help="output file (default: stdout)")

    submit = sub.add_parser("submit", help="render and create the RayJob with kubectl")
    _add_job_options(submit)
    submit.add_argument("-f", "--file", help="submit this rendered manifest instead")

    status = sub.add_parser("status", help="show a RayJob's state")
    status.add_argument("name")
    status.add_argument("--json", action="store_true", help="print the raw status object")

    logs = sub.add_parser("logs", help="print the sweep driver's output")
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--head", action="store_true", help="the head pod's log instead")

    for p in (submit, status, logs):
        p.add_argument("--context", help="kubectl context (default: the current one)")
    for p in (status, logs):
        p.add_argument("-n", "--namespace", default="resbench")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"render": cmd_render, "submit": cmd_submit, "status": cmd_status, "logs": cmd_logs}
    try:
        return handler[args.command](args)
    except ConfigError as exc:
        root = exc.path.split(".")[0].split("[")[0]
        hint = f" (option {FLAG_OF[root]})" if root in FLAG_OF and not exc.source else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except ResbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
