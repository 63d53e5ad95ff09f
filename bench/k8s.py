"""KubeRay ``RayJob`` rendering for sweeps: a validated job spec in, plain manifest dicts out.

Pure data transformation (standard library, PyYAML, the pydantic specs): no Kubernetes client,
no ray, no mlflow.
``launchers/k8s.py`` reads the command line and talks to the cluster; everything a user can get
wrong is refused here with a ``ConfigError`` naming the key, the bad value and what is valid.

Contract of the rendered job:
- the entrypoint runs ``python -m launchers.sweep --space S --address auto --storage T
  --resume auto`` on the head node; each ``backoffLimit`` retry is a fresh Ray cluster, so the
  sweep must resume from the shared storage ``T`` (``--resume auto``: restore when an
  experiment exists there, else start);
- the MLflow tracking URI comes from a ConfigMap and credentials only from Secret references
  (``secretKeyRef``): a rendered manifest never holds a secret value.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml

from bench.config import Bool, Float, Int, Str, doc, parse, spec_class
from bench.errors import ConfigError

API_VERSION = "ray.io/v1"
TRACKING_URI_KEY = "MLFLOW_TRACKING_URI"
# Keys looked up in the credentials Secret (key name == environment variable name).
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
HEAD_CONTAINER = "ray-head"
WORKER_CONTAINER = "ray-worker"
WORKER_GROUP = "gpu-workers"
# Flags of the sweep launcher that the renderer owns.
RENDERED_SWEEP_FLAGS = ("--space", "--address", "--storage", "--resume")
# Environment names that must never carry a literal value.
SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|API_?KEY|ACCESS_KEY|PRIVATE", re.I
)

# KubeRay names the cluster "<job>-<5 chars>" and its services "<cluster>-serve-svc" (<= 63).
MAX_RAYJOB_NAME = 47
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMORY = re.compile(r"(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_URI = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://([^/]*)(.*)")
_VERSION = re.compile(r"\d+\.\d+\.\d+([.+-]\S*)?")

Effect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""]


@spec_class
class Toleration:
    """A pod toleration; the CLI form is ``key=value:Effect``, ``key:Effect`` or ``key``."""

    key: Str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: Str = ""
    effect: Effect = "NoSchedule"

    def __post_init__(self) -> None:
        if self.operator == "Exists" and self.value:
            raise ConfigError(f"operator Exists takes no value, got {self.value!r}", "value")
        if self.operator == "Equal" and not self.key:
            raise ConfigError("a key is required unless operator is Exists", "key")
        if self.key:
            _check_qualified_name(self.key, "key")
        if len(self.value) > 63 or not _LABEL_NAME.fullmatch(self.value):
            raise ConfigError(f"{self.value!r} is not a valid label value", "value")

    def manifest(self) -> dict[str, str]:
        out = {"key": self.key, "operator": self.operator}
        if self.operator == "Equal":
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        return {k: v for k, v in out.items() if v or k == "value"}


@spec_class
class RayJobSpec:
    """Inputs of ``python -m launchers.k8s render``: one sweep as one KubeRay RayJob."""

    space: Str = doc(
        "search-space YAML inside the image; relative paths resolve against workdir", default=""
    )
    image: Str = doc("container image with resbench installed (see the Dockerfile)", default="")
    storage: Str = doc(
        "shared Tune storage: s3://bucket/prefix (or gs://...) or a path on the PVC", default=""
    )
    name: Str = doc("RayJob name (RFC 1035 label, at most 47 characters)", default="resbench-sweep")
    namespace: Str = doc(
        "Kubernetes namespace (mlflow/k8s deploys to resbench)", default="resbench"
    )
    workers: Int = doc("GPU worker pods (fixed size, no autoscaling)", default=1)
    gpus_per_worker: Int = doc("nvidia.com/gpu per worker pod (0: CPU-only workers)", default=1)
    cpus: Float = doc("CPU cores per worker pod", default=8.0)
    memory: Str | Int = doc(
        "memory per worker pod (Kubernetes quantity, e.g. 32Gi)", default="32Gi"
    )
    head_cpus: Float = doc(
        "CPU cores of the head pod (runs the Tune driver, no trials)", default=2.0
    )
    head_memory: Str | Int = doc("memory of the head pod", default="8Gi")
    node_selector: dict[str, Str] = doc("node labels the worker pods require", default_factory=dict)
    tolerations: tuple[Toleration, ...] = doc("taints the worker pods tolerate", default=())
    head_node_selector: dict[str, Str] = doc(
        "node labels the head pod requires", default_factory=dict
    )
    head_tolerations: tuple[Toleration, ...] = doc("taints the head pod tolerates", default=())
    pvc: Str = doc(
        "ReadWriteMany PersistentVolumeClaim mounted on every pod at pvc_mount", default=""
    )
    pvc_mount: Str = doc("mount path of pvc", default="/mnt/shared")
    tracking_configmap: Str = doc(
        f"ConfigMap whose key {TRACKING_URI_KEY} holds the MLflow tracking URI",
        default="mlflow-tracking",
    )
    credentials_secret: Str = doc(
        "Secret with keys MLFLOW_TRACKING_USERNAME/PASSWORD (and AWS_* for s3 storage)", default=""
    )
    service_account: Str = doc(
        "service account of the pods (e.g. for workload identity)", default=""
    )
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = doc(
        "when the kubelet pulls the image: IfNotPresent, Always or Never", default="IfNotPresent"
    )
    image_pull_secret: Str = doc("Secret for a private registry", default="")
    ray_version: Str = doc(
        "Ray version inside the image (KubeRay uses it for feature checks)", default=""
    )
    workdir: Str = doc("working directory of the image (WORKDIR in the Dockerfile)", default="/app")
    env: dict[str, Str] = doc(
        "non-secret environment variables for the job (runtimeEnvYAML)", default_factory=dict
    )
    sweep_args: tuple[Str, ...] = doc("extra arguments for launchers.sweep", default=())
    shutdown_after_job_finishes: Bool = doc(
        "delete the Ray cluster when the job ends", default=True
    )
    ttl_seconds_after_finished: Int = doc(
        "seconds to keep the finished cluster/RayJob", default=3600
    )
    active_deadline_seconds: Int | None = doc(
        "wall-clock limit of the whole job (null: none)", default=7 * 86400
    )
    backoff_limit: Int = doc(
        "retries; each retry is a new Ray cluster resuming from storage", default=2
    )

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def space_path(self) -> str:
        """The space file as the head pod sees it."""
        if self.space.startswith("/"):
            return self.space
        return f"{self.workdir.rstrip('/')}/{self.space.removeprefix('./')}"


# ---------------------------------------------------------------------------------------------
# validation


def _check_name(
    value: str, key: str, kind: str, *, dns1035: bool = False, label: bool = False
) -> None:
    if dns1035:
        pattern, limit, rule = _DNS1035, MAX_RAYJOB_NAME, "RFC 1035 label"
        start = "starting with a letter"
    elif label:
        pattern, limit, rule = _DNS1123_LABEL, 63, "RFC 1123 label"
        start = "starting with a letter or digit"
    else:
        pattern, limit, rule = _DNS1123_SUBDOMAIN, 253, "RFC 1123 subdomain"
        start = "starting with a letter or digit, dots allowed"
    if not pattern.fullmatch(value) or len(value) > limit:
        raise ConfigError(
            f"{value!r} is not a valid {kind} name: use lowercase letters, digits and '-', "
            f"{start}, ending with a letter or digit, at most {limit} characters ({rule})",
            key,
        )


def _check_qualified_name(value: str, key: str) -> None:
    prefix, _, name = value.rpartition("/")
    ok = bool(name) and len(name) <= 63 and bool(_LABEL_NAME.fullmatch(name))
    if prefix:
        ok = ok and len(prefix) <= 253 and bool(_DNS1123_SUBDOMAIN.fullmatch(prefix))
    if not ok:
        raise ConfigError(
            f"{value!r} is not a valid label key: [prefix/]name, name of at most 63 letters, "
            "digits, '-', '_' or '.' starting and ending with a letter or digit",
            key,
        )


def _check_labels(labels: Mapping[str, str], key: str) -> None:
    for k, v in labels.items():
        _check_qualified_name(k, f"{key}.{k}")
        if len(v) > 63 or not _LABEL_NAME.fullmatch(v):
            raise ConfigError(
                f"{v!r} is not a valid label value: at most 63 letters, digits, '-', '_' or '.'",
                f"{key}.{k}",
            )


def _check_memory(value: str | int, key: str) -> None:
    text = str(value)
    if text.endswith("m") and _MEMORY.fullmatch(text[:-1]):
        raise ConfigError(
            f"{text!r} means {text[:-1]}/1000 bytes in Kubernetes; use Mi or Gi (e.g. {text[:-1]}Mi)",
            key,
        )
    if not _MEMORY.fullmatch(text):
        raise ConfigError(f"{text!r} is not a memory quantity; use e.g. 512Mi, 32Gi or 64G", key)


def _validate(spec: RayJobSpec) -> None:
    for key, example in (
        ("image", "--image registry.example.com/resbench:0.1.0 (build it from the Dockerfile)"),
        ("space", "--space search_spaces/quickstart.yaml"),
        ("storage", "--storage s3://bucket/resbench or --pvc CLAIM --storage /mnt/shared/tune"),
    ):
        value = getattr(spec, key)
        if not value.strip():
            raise ConfigError(f"required, e.g. {example}", key)
        if any(c.isspace() for c in value) and key != "space":
            raise ConfigError(f"{value!r} must not contain whitespace", key)
    if "\n" in spec.space:
        raise ConfigError("must be a single line", "space")

    _check_name(spec.name, "name", "RayJob", dns1035=True)
    _check_name(spec.namespace, "namespace", "namespace", label=True)
    _check_name(spec.tracking_configmap, "tracking_configmap", "ConfigMap")
    for key in ("credentials_secret", "pvc", "image_pull_secret", "service_account"):
        if getattr(spec, key):
            _check_name(getattr(spec, key), key, key.replace("_", " "))

    if spec.workers < 1:
        raise ConfigError(f"must be at least 1, got {spec.workers}", "workers")
    if spec.gpus_per_worker < 0:
        raise ConfigError(f"must be 0 or more, got {spec.gpus_per_worker}", "gpus_per_worker")
    for key in ("cpus", "head_cpus"):
        value = getattr(spec, key)
        if not value > 0 or abs(round(value * 1000) - value * 1000) > 1e-6:
            raise ConfigError(f"must be a positive multiple of 0.001, got {value}", key)
    _check_memory(spec.memory, "memory")
    _check_memory(spec.head_memory, "head_memory")
    _check_labels(spec.node_selector, "node_selector")
    _check_labels(spec.head_node_selector, "head_node_selector")

    if spec.ttl_seconds_after_finished < 0:
        raise ConfigError(
            f"must be 0 or more, got {spec.ttl_seconds_after_finished}",
            "ttl_seconds_after_finished",
        )
    if spec.active_deadline_seconds is not None and spec.active_deadline_seconds < 1:
        raise ConfigError(
            f"must be positive (or null for no limit), got {spec.active_deadline_seconds}",
            "active_deadline_seconds",
        )
    if spec.backoff_limit < 0:
        raise ConfigError(f"must be 0 or more, got {spec.backoff_limit}", "backoff_limit")
    if spec.ray_version and not _VERSION.fullmatch(spec.ray_version):
        raise ConfigError(f"{spec.ray_version!r} is not a version like 2.40.0", "ray_version")

    for key in ("workdir", "pvc_mount"):
        value = getattr(spec, key)
        if not value.startswith("/") or value.rstrip("/") == "":
            raise ConfigError(f"must be an absolute path below /, got {value!r}", key)

    _validate_storage(spec)

    for name in spec.env:
        if not _ENV_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not an environment variable name", f"env.{name}")
        if SECRET_NAME.search(name):
            raise ConfigError(
                f"{name!r} looks like a credential: literal secrets never go into a manifest; "
                "put it in the Secret named by credentials_secret",
                f"env.{name}",
            )
        if name == TRACKING_URI_KEY:
            raise ConfigError(
                f"comes from the ConfigMap {spec.tracking_configmap!r}", f"env.{name}"
            )
    for i, arg in enumerate(spec.sweep_args):
        if "\n" in arg:
            raise ConfigError("must be a single line", f"sweep_args[{i}]")
        if arg.split("=", 1)[0] in RENDERED_SWEEP_FLAGS:
            raise ConfigError(
                f"{arg!r} is set by the renderer; use the space/storage options instead",
                f"sweep_args[{i}]",
            )


def _validate_storage(spec: RayJobSpec) -> None:
    storage = spec.storage
    match = _URI.fullmatch(storage)
    if match and match.group(1).lower() != "file":
        if "@" in match.group(2):
            raise ConfigError(
                "credentials in the URI would end up in the manifest; "
                "give them through credentials_secret instead",
                "storage",
            )
        if not match.group(2):
            raise ConfigError(f"{storage!r} names no bucket", "storage")
        return
    path = match.group(3) if match else storage
    if not path.startswith("/"):
        raise ConfigError(
            f"{storage!r} is neither a URI (s3://bucket/prefix) nor an absolute path", "storage"
        )
    if not spec.pvc:
        raise ConfigError(
            f"{storage!r} is a path inside the pods, which every Ray node must share: "
            "give a ReadWriteMany PersistentVolumeClaim (pvc, --pvc) or an s3:// URI",
            "storage",
        )
    mount = spec.pvc_mount.rstrip("/")
    if path.rstrip("/") != mount and not path.startswith(mount + "/"):
        raise ConfigError(
            f"{storage!r} is not below pvc_mount {spec.pvc_mount!r} (--pvc-mount)", "storage"
        )


# ---------------------------------------------------------------------------------------------
# loose input (YAML file, command line) -> RayJobSpec


def parse_key_value(text: str, key: str) -> tuple[str, str]:
    """``"k=v"`` -> ``("k", "v")``, for node selectors and environment variables."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"{text!r} is not of the form key=value", key)
    return name, value


def parse_toleration(text: str) -> dict[str, str]:
    """``key=value:Effect`` (Equal), ``key:Effect`` or ``key`` (Exists); no effect: all."""
    body, sep, effect = text.rpartition(":")
    if not sep:
        body, effect = text, ""
    name, eq, value = body.partition("=")
    return {"key": name, "operator": "Equal" if eq else "Exists", "value": value, "effect": effect}


def spec_from_options(config: str | None, values: Mapping[str, tuple[Any, str]]) -> RayJobSpec:
    """A spec from a YAML file of options (``config``: keys = option names with underscores)
    under command-line ``values`` (field -> (text or None, kind); kind ``yaml``: a YAML scalar,
    ``str``: verbatim, ``list``: repeated); Ray's version defaults to the installed one (the
    image is built from this project)."""
    from importlib import metadata
    from pathlib import Path

    data: dict[str, Any] = {}
    source = ""
    if config:
        source = config
        try:
            loaded = yaml.safe_load(Path(config).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", source=source) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", source=source) from exc
        if not isinstance(loaded, dict):
            raise ConfigError("expected a mapping of options", source=source)
        data.update(loaded)
        source = ""  # command-line values below are not from the file
    for field, (value, kind) in values.items():
        if value is None:
            continue
        if kind == "yaml":
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                pass
        data[field] = value
    if "ray_version" not in data:
        try:
            data["ray_version"] = metadata.version("ray")
        except metadata.PackageNotFoundError:
            pass
    return job_spec(data, source=source)


def job_spec(data: Mapping[str, Any] | None, source: str = "") -> RayJobSpec:
    """A ``RayJobSpec`` from a mapping where tolerations, selectors and env may be CLI strings."""
    data = dict(data or {})
    for key in ("tolerations", "head_tolerations"):
        items = data.get(key)
        if isinstance(items, (str, Mapping)):
            items = [items]
        if isinstance(items, list):
            data[key] = [parse_toleration(t) if isinstance(t, str) else t for t in items]
    for key in ("node_selector", "head_node_selector", "env"):
        items = data.get(key)
        if isinstance(items, str):
            items = [items]
        if isinstance(items, list):
            pairs = [parse_key_value(str(t), key) for t in items]
            data[key] = dict(pairs)
    if isinstance(data.get("sweep_args"), str):
        data["sweep_args"] = shlex.split(data["sweep_args"])
    return parse(RayJobSpec, data, source=source)


# ---------------------------------------------------------------------------------------------
# rendering


def entrypoint_argv(spec: RayJobSpec) -> list[str]:
    """The sweep command the head node runs (one argument per list item)."""
    return [
        "python", "-m", "launchers.sweep",
        "--space", spec.space_path,
        "--address", "auto",
        "--storage", spec.storage,
        "--resume", "auto",
        *spec.sweep_args,
    ]  # fmt: skip


def entrypoint(spec: RayJobSpec) -> str:
    """``entrypoint_argv`` as one shell-quoted line.

    KubeRay's submitter runs ``ray job submit -- <entrypoint>`` in bash, and Ray re-quotes the
    words it gets (shlex.join) for the head's shell, so one level of shell quoting is exact.
    """
    return shlex.join(entrypoint_argv(spec))


def runtime_env(spec: RayJobSpec) -> dict[str, Any]:
    """The job's Ray runtime environment (code and packages come from the image)."""
    return {"env_vars": {"PYTHONUNBUFFERED": "1", **spec.env}}


def _cpu(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def _env(spec: RayJobSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": TRACKING_URI_KEY,
            "valueFrom": {
                "configMapKeyRef": {"name": spec.tracking_configmap, "key": TRACKING_URI_KEY}
            },
        }
    ]
    if spec.credentials_secret:
        keys = list(MLFLOW_SECRET_KEYS)
        if spec.storage.lower().startswith("s3://"):
            keys += S3_SECRET_KEYS
        # optional: one Secret may hold only the MLflow or only the S3 credentials.
        env += [
            {
                "name": key,
                "valueFrom": {
                    "secretKeyRef": {"name": spec.credentials_secret, "key": key, "optional": True}
                },
            }
            for key in keys
        ]
    return env


def _pod_spec(
    spec: RayJobSpec,
    container: str,
    resources: dict[str, Any],
    node_selector: Mapping[str, str],
    tolerations: Sequence[Toleration],
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    # Ray's object store and torch DataLoader workers live in /dev/shm (64 MiB by default).
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    if spec.pvc:
        mounts.append({"name": "shared", "mountPath": spec.pvc_mount})
        volumes.append({"name": "shared", "persistentVolumeClaim": {"claimName": spec.pvc}})
    body: dict[str, Any] = {
        "name": container,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "env": _env(spec),
        "resources": resources,
        "volumeMounts": mounts,
    }
    if ports:
        body["ports"] = ports
    pod: dict[str, Any] = {"containers": [body], "volumes": volumes}
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = [t.manifest() for t in tolerations]
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    if spec.image_pull_secret:
        pod["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    return {"metadata": {"labels": {"app.kubernetes.io/name": "resbench"}}, "spec": pod}


def render_rayjob(spec: RayJobSpec) -> dict[str, Any]:
    """The RayJob manifest (``apiVersion: ray.io/v1``) as plain data."""
    head_resources = {
        "requests": {"cpu": _cpu(spec.head_cpus), "memory": str(spec.head_memory)},
        "limits": {"cpu": _cpu(spec.head_cpus), "memory": str(spec.head_memory)},
    }
    worker_limits: dict[str, Any] = {"cpu": _cpu(spec.cpus), "memory": str(spec.memory)}
    if spec.gpus_per_worker:
        worker_limits["nvidia.com/gpu"] = spec.gpus_per_worker
    worker_resources = {
        "requests": {"cpu": _cpu(spec.cpus), "memory": str(spec.memory)},
        "limits": worker_limits,
    }
    head_ports = [
        {"name": "gcs-server", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "client", "containerPort": 10001},
    ]
    cluster: dict[str, Any] = {}
    if spec.ray_version:
        cluster["rayVersion"] = spec.ray_version
    cluster["enableInTreeAutoscaling"] = False
    cluster["headGroupSpec"] = {
        # num-cpus 0: trials never land on the head, which only runs the Tune driver.
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "template": _pod_spec(
            spec,
            HEAD_CONTAINER,
            head_resources,
            spec.head_node_selector,
            spec.head_tolerations,
            head_ports,
        ),
    }
    cluster["workerGroupSpecs"] = [
        {
            "groupName": WORKER_GROUP,
            "replicas": spec.workers,
            "minReplicas": spec.workers,
            "maxReplicas": spec.workers,
            "rayStartParams": {},
            "template": _pod_spec(
                spec, WORKER_CONTAINER, worker_resources, spec.node_selector, spec.tolerations
            ),
        }
    ]
    job: dict[str, Any] = {
        "entrypoint": entrypoint(spec),
        "runtimeEnvYAML": yaml.safe_dump(runtime_env(spec), sort_keys=False),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": spec.shutdown_after_job_finishes,
        "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
    }
    if spec.active_deadline_seconds is not None:
        job["activeDeadlineSeconds"] = spec.active_deadline_seconds
    job["backoffLimit"] = spec.backoff_limit
    job["rayClusterSpec"] = cluster
    return {
        "apiVersion": API_VERSION,
        "kind": "RayJob",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": {
                "app.kubernetes.io/name": "resbench",
                "app.kubernetes.io/component": "sweep",
            },
            "annotations": {"resbench/space": spec.space, "resbench/storage": spec.storage},
        },
        "spec": job,
    }


def dump_yaml(manifest: Mapping[str, Any]) -> str:
    """A manifest as YAML in field order (multi-line strings as literal blocks)."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(
        dict(manifest), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10**6
    )


def status_lines(rayjob: Mapping[str, Any]) -> list[str]:
    """A short human summary of a RayJob object as returned by the API server."""
    meta = rayjob.get("metadata") or {}
    status = rayjob.get("status") or {}
    rows = [
        ("job status", status.get("jobStatus") or "-"),
        ("deployment", status.get("jobDeploymentStatus") or "-"),
        ("ray cluster", status.get("rayClusterName") or "-"),
        ("dashboard", status.get("dashboardURL") or "-"),
        ("started", status.get("startTime") or "-"),
        ("ended", status.get("endTime") or "-"),
        ("attempts", f"succeeded={status.get('succeeded', 0)} failed={status.get('failed', 0)}"),
    ]
    if status.get("reason"):
        rows.append(("reason", status["reason"]))
    if status.get("message"):
        rows.append(("message", str(status["message"]).strip()))
    head = f"rayjob/{meta.get('name', '?')} (namespace {meta.get('namespace', '?')})"
    return [head, *(f"  {k + ':':<12} {v}" for k, v in rows)]


__all__ = [
    "API_VERSION",
    "RayJobSpec",
    "Toleration",
    "dump_yaml",
    "entrypoint",
    "entrypoint_argv",
    "job_spec",
    "parse_key_value",
    "parse_toleration",
    "render_rayjob",
    "runtime_env",
    "status_lines",
]
