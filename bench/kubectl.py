"""The kubectl side of ``launchers.k8s``: finding kubectl and a cluster that answers, creating
RayJobs from rendered manifests, reading a RayJob's status and streaming its logs. Failures of
kubectl are one message on stderr and an exit code (2: the cluster has no RayJob resource)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ResbenchError
from bench.k8s import HEAD_CONTAINER, status_lines


def kubectl(context: str | None) -> list[str]:
    """The kubectl command prefix, after checking that a cluster answers."""
    exe = shutil.which("kubectl")
    if exe is None:
        raise ResbenchError(
            "kubectl not found on PATH: install it and point it at your cluster "
            "(https://kubernetes.io/docs/tasks/tools/); `render` works without it"
        )
    cmd = [exe] + (["--context", context] if context else [])
    probe = subprocess.run(
        [*cmd, "get", "--raw", "/version", "--request-timeout=10s"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        lines = [ln.strip() for ln in probe.stderr.splitlines() if ln.strip()]
        reason = lines[-1].removeprefix("error: ") if lines else f"exit {probe.returncode}"
        raise ResbenchError(
            f"no Kubernetes cluster reachable with kubectl ({reason}); "
            "check `kubectl config current-context`, KUBECONFIG or --context"
        )
    return cmd


def _fail(result: subprocess.CompletedProcess[str], what: str) -> int:
    sys.stderr.write(result.stderr)
    if "no matches for kind" in result.stderr or "the server doesn't have a resource type" in (
        result.stderr
    ):
        print(
            f"error: {what}: the cluster has no RayJob resource; install the KubeRay operator",
            file=sys.stderr,
        )
        return 2
    print(f"error: {what} failed (kubectl exit {result.returncode})", file=sys.stderr)
    return 1


def read_manifests(path: str) -> tuple[str, list[dict[str, Any]]]:
    """(text, documents) of a rendered manifest file; every document must be a RayJob."""
    try:
        text = Path(path).read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
    except OSError as exc:
        raise ResbenchError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ResbenchError(f"{path}: not valid YAML: {exc}") from exc
    if not docs or any(not isinstance(d, dict) or d.get("kind") != "RayJob" for d in docs):
        raise ResbenchError(f"{path}: expected RayJob manifests (from `render`)")
    return text, docs


def submit(text: str, docs: list[dict[str, Any]], context: str | None) -> int:
    """``kubectl create`` the manifests; prints how to follow each job."""
    cmd = kubectl(context)
    result = subprocess.run(
        [*cmd, "create", "-f", "-"], input=text, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return _fail(result, "submit")
    sys.stdout.write(result.stdout)
    for doc in docs:
        name = doc["metadata"]["name"]
        ns = doc["metadata"].get("namespace", "default")
        print(f"follow it: python -m launchers.k8s logs {name} -n {ns} --follow")
    return 0


def _get_rayjob(cmd: list[str], name: str, namespace: str) -> dict[str, Any] | int:
    result = subprocess.run(
        [*cmd, "get", "rayjob", name, "-n", namespace, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return _fail(result, f"get rayjob/{name}")
    return json.loads(result.stdout)


def status(name: str, namespace: str, context: str | None, as_json: bool) -> int:
    """Print a RayJob's state (``as_json``: its raw status object)."""
    obj = _get_rayjob(kubectl(context), name, namespace)
    if isinstance(obj, int):
        return obj
    if as_json:
        print(json.dumps(obj.get("status") or {}, indent=2, sort_keys=True))
    else:
        print("\n".join(status_lines(obj)))
    return 0


def logs(name: str, namespace: str, context: str | None, follow: bool, head: bool) -> int:
    """Stream the sweep driver's output (``head``: the head pod's log)."""
    cmd = kubectl(context)
    if head:
        obj = _get_rayjob(cmd, name, namespace)
        if isinstance(obj, int):
            return obj
        cluster = (obj.get("status") or {}).get("rayClusterName")
        if not cluster:
            raise ResbenchError(f"rayjob/{name} has no Ray cluster yet; see `status`")
        target = ["-l", f"ray.io/cluster={cluster},ray.io/node-type=head", "-c", HEAD_CONTAINER,
                  "--tail=-1"]
    else:
        # K8sJobMode: the submitter Job (named after the RayJob) streams the driver's output.
        target = [f"job/{name}"]
    return subprocess.run(
        [*cmd, "logs", "-n", namespace, *target, *(["--follow"] if follow else [])], check=False
    ).returncode
