"""Kubernetes side, offline: rendered RayJobs against KubeRay's CRD schemas (unknown fields
rejected, as the API server does), the mlflow/ manifests against the upstream core schemas
(kubernetes-validate), input validation, secret hygiene, the entrypoint's quoting through both
shells it passes, the Docker build inputs, and the kubectl-driven commands.

The CRDs live in ../shared/schemas/kuberay/ (next to the repository); without them the schema
tests are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.config import field_doc, to_dict
from bench.errors import ConfigError
from bench.k8s import (
    RayJobSpec,
    dump_yaml,
    entrypoint,
    entrypoint_argv,
    job_spec,
    render_rayjob,
    status_lines,
)
from launchers import k8s as cli

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT.parent / "shared" / "schemas" / "kuberay"
MLFLOW_K8S = ROOT / "mlflow" / "k8s"
IN_CI = os.environ.get("CI", "").lower() == "true"
K8S_VERSION = "1.30.0"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

BASE = {"space": "search_spaces/quickstart.yaml", "image": "registry.example.com/resbench:0.1.0"}
VARIANTS: dict[str, dict[str, Any]] = {
    "s3-with-credentials": {
        **BASE,
        "storage": "s3://sweeps/resbench?endpoint_override=http://minio.minio:9000&scheme=http",
        "workers": 4,
        "gpus_per_worker": 8,
        "cpus": 7.5,
        "memory": "200Gi",
        "node_selector": ["nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3"],
        "tolerations": ["nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute"],
        "credentials_secret": "resbench-credentials",
        "image_pull_secret": "registry-login",
        "env": ["RESBENCH_NOTE=h100 run"],
        "sweep_args": "--set train.epochs=30 --set 'search.num_samples=64'",
    },
    "pvc-cpu-only": {
        **BASE,
        "storage": "/mnt/shared/tune",
        "pvc": "resbench-results",
        "gpus_per_worker": 0,
        "head_node_selector": {"kubernetes.io/arch": "amd64"},
        "head_tolerations": [{"key": "cpu-only", "operator": "Exists", "effect": ""}],
        "service_account": "resbench",
        "active_deadline_seconds": None,
        "backoff_limit": 0,
        "shutdown_after_job_finishes": False,
        "ray_version": "2.60.0",
    },
}


# ---------------------------------------------------------------------------------------------
# schema validation helpers


def strict_schema(schema: Any) -> Any:
    """A copy where every object schema with ``properties`` (and no
    ``x-kubernetes-preserve-unknown-fields: true``) rejects unknown keys."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {k: strict_schema(v) for k, v in schema["properties"].items()}
        if schema.get("x-kubernetes-preserve-unknown-fields") is not True:
            out.setdefault("additionalProperties", False)
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = strict_schema(schema["additionalProperties"])
    for key in ("items", "not"):
        if isinstance(schema.get(key), dict):
            out[key] = strict_schema(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = strict_schema(schema[key])
    return out


@pytest.fixture(scope="module")
def crd_validators() -> dict[str, Any]:
    if not CRD_DIR.is_dir():
        if IN_CI:
            pytest.fail(f"KubeRay CRD schemas missing at {CRD_DIR} (CI=true: required)")
        pytest.skip(f"KubeRay CRD schemas not found at {CRD_DIR}")
    import jsonschema

    validators = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=Loader)
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schema = strict_schema(version["schema"]["openAPIV3Schema"])
        validators[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    assert "RayJob" in validators, sorted(validators)
    return validators


def crd_errors(validators: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    assert manifest["apiVersion"] == "ray.io/v1"
    validator = validators[manifest["kind"]]
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]


def core_validate(manifest: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def render(name: str) -> dict[str, Any]:
    return render_rayjob(job_spec(VARIANTS[name]))


# ---------------------------------------------------------------------------------------------
# rendered RayJobs


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_rayjob_validates_against_kuberay_crd(crd_validators, variant: str) -> None:
    manifest = render(variant)
    assert crd_errors(crd_validators, manifest) == []
    # and the YAML text that is written is the same object
    assert yaml.safe_load(dump_yaml(manifest)) == manifest


@pytest.mark.parametrize(
    ("path", "bad_key"),
    [
        (("spec",), "shutdownAfterJobFinish"),
        (("spec", "rayClusterSpec", "workerGroupSpecs", 0), "replica"),
        (
            ("spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0),
            "imagePulPolicy",
        ),
        (("spec", "rayClusterSpec", "workerGroupSpecs", 0, "template", "spec"), "tolerations_"),
        (
            (
                "spec",
                "rayClusterSpec",
                "workerGroupSpecs",
                0,
                "template",
                "spec",
                "containers",
                0,
                "env",
                0,
                "valueFrom",
            ),
            "configMapKeyRf",
        ),
    ],  # fmt: skip
)
def test_validator_rejects_misspelled_fields(crd_validators, path, bad_key) -> None:
    manifest = copy.deepcopy(render("s3-with-credentials"))
    node = manifest
    for part in path:
        node = node[part]
    node[bad_key] = node.get(bad_key.rstrip("_"), 1)
    errors = crd_errors(crd_validators, manifest)
    assert any(bad_key in e for e in errors), errors


def test_validator_rejects_wrong_types(crd_validators) -> None:
    manifest = copy.deepcopy(render("s3-with-credentials"))
    manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "4"
    manifest["spec"]["backoffLimit"] = 1.5
    errors = crd_errors(crd_validators, manifest)
    assert len(errors) == 2, errors


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pod_templates_validate_as_core_objects(variant: str) -> None:
    cluster = render(variant)["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        core_validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "t"},
                "template": group["template"],
            }
        )


def test_rayjob_contents() -> None:
    spec = job_spec(VARIANTS["s3-with-credentials"])
    manifest = render_rayjob(spec)
    job = manifest["spec"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    assert manifest["metadata"]["namespace"] == "resbench"
    assert job["shutdownAfterJobFinishes"] is True
    assert job["ttlSecondsAfterFinished"] == 3600
    assert job["activeDeadlineSeconds"] == 7 * 86400
    assert job["backoffLimit"] == 2
    assert yaml.safe_load(job["runtimeEnvYAML"]) == {
        "env_vars": {"PYTHONUNBUFFERED": "1", "RESBENCH_NOTE": "h100 run"}
    }
    head = job["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert "nodeSelector" not in head["template"]["spec"]
    (workers,) = job["rayClusterSpec"]["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 4
    pod = workers["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == BASE["image"]
    assert container["resources"]["limits"] == {
        "cpu": "7500m",
        "memory": "200Gi",
        "nvidia.com/gpu": 8,
    }
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
    ]
    assert pod["imagePullSecrets"] == [{"name": "registry-login"}]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]

    cpu_only = render("pvc-cpu-only")
    assert "activeDeadlineSeconds" not in cpu_only["spec"]
    assert cpu_only["spec"]["rayClusterSpec"]["rayVersion"] == "2.60.0"
    (workers,) = cpu_only["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    pod = workers["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert {"name": "shared", "persistentVolumeClaim": {"claimName": "resbench-results"}} in pod[
        "volumes"
    ]
    assert {"name": "shared", "mountPath": "/mnt/shared"} in pod["containers"][0]["volumeMounts"]
    head = cpu_only["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["tolerations"] == [{"key": "cpu-only", "operator": "Exists"}]
    assert head["serviceAccountName"] == "resbench"


def test_entrypoint_runs_the_sweep_with_resume_auto() -> None:
    spec = job_spec({**BASE, "storage": "s3://b/p"})
    assert entrypoint_argv(spec) == [
        "python", "-m", "launchers.sweep", "--space", "/app/search_spaces/quickstart.yaml",
        "--address", "auto", "--storage", "s3://b/p", "--resume", "auto",
    ]  # fmt: skip
    absolute = job_spec({**BASE, "space": "/mnt/shared/spaces/big.yaml", "storage": "s3://b/p"})
    assert entrypoint_argv(absolute)[4] == "/mnt/shared/spaces/big.yaml"


def test_entrypoint_quoting_survives_submitter_and_head_shells() -> None:
    """KubeRay's submitter runs ``ray job submit -- <entrypoint>`` in bash; Ray re-joins the
    words with shlex.join and the head runs that with /bin/sh. The argv must arrive intact."""
    spec = job_spec(
        {
            **BASE,
            "space": "spaces/my space $HOME.yaml",
            "storage": "s3://b/p?endpoint_override=http://m:9000&scheme=http",
            "sweep_args": ["--set", "train.note=it's `x` & $(y)"],
        }
    )
    printer = f"{shlex.quote(sys.executable)} -c 'import json,sys; print(json.dumps(sys.argv[1:]))'"

    def argv_after(shell: str, line: str) -> list[str]:
        result = subprocess.run(
            [shell, "-c", f"{printer} {line}"], capture_output=True, text=True, check=True
        )
        return json.loads(result.stdout)

    received = argv_after("bash", entrypoint(spec))  # what `ray job submit --` receives
    assert received == entrypoint_argv(spec)
    assert argv_after("sh", shlex.join(received)) == entrypoint_argv(spec)  # what the head runs


# ---------------------------------------------------------------------------------------------
# inputs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "workers: must be at least 1, got 0"),
        (["--gpus-per-worker", "1.5"], "gpus_per_worker: expected an integer, got 1.5"),
        (["--gpus-per-worker", "two"], "gpus_per_worker: expected an integer, got 'two'"),
        (["--image", ""], "image: required"),
        (["--name", "My_Sweep"], "name: 'My_Sweep' is not a valid RayJob name"),
        (["--name", "a" * 48], "at most 47 characters"),
        (["--name", "1sweep"], "starting with a letter"),
        (["--namespace", "team.a"], "namespace: 'team.a' is not a valid namespace name"),
        (["--credentials-secret", "Creds"], "credentials_secret: 'Creds' is not a valid"),
        (["--memory", "512m"], "use Mi or Gi"),
        (["--cpus", "-1"], "cpus: must be a positive"),
        (["--storage", "/mnt/shared/x"], "every Ray node must share"),
        (["--storage", "relative/dir"], "neither a URI"),
        (["--storage", "s3://KEY:SECRET@bucket/p"], "credentials in the URI"),
        (["--pvc", "results", "--storage", "/data/x"], "is not below pvc_mount"),
        (["--toleration", "gpu=yes:Sometimes"], "tolerations[0].effect: invalid value 'Sometimes'"),
        (["--toleration", "gpu=a=b"], "tolerations[0].value"),
        (["--node-selector", "gpu"], "node_selector: 'gpu' is not of the form key=value"),
        (["--node-selector", "bad key=x"], "is not a valid label key"),
        (["--env", "MLFLOW_TRACKING_PASSWORD=hunter2"], "looks like a credential"),
        (["--env", "WANDB_API_KEY=abc"], "looks like a credential"),
        (["--sweep-args", "--storage /tmp/x"], "is set by the renderer"),
        (["--backoff-limit", "-1"], "backoff_limit: must be 0 or more"),
        (["--active-deadline-seconds", "0"], "active_deadline_seconds: must be positive"),
        (["--image-pull-policy", "Sometimes"], "image_pull_policy: invalid value 'Sometimes'"),
    ],
)
def test_bad_inputs_are_refused_with_one_clear_message(capsys, extra, message) -> None:
    argv = ["render", "--space", "s.yaml", "--image", "img:1", "--storage", "s3://b/p", *extra]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


def test_missing_image_as_a_real_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launchers.k8s", "render", "--space", "s.yaml", "--storage", "s3://b/p"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: image: required") and "Traceback" not in result.stderr


def test_spec_is_frozen_and_parsed_by_bench_config() -> None:
    spec = job_spec({**BASE, "storage": "s3://b/p"})
    with pytest.raises(AttributeError):
        spec.workers = 3  # type: ignore[misc]
    assert job_spec(to_dict(spec)) == spec
    with pytest.raises(ConfigError, match="unknown key 'worker' \\(did you mean 'workers'\\?\\)"):
        job_spec({**BASE, "storage": "s3://b/p", "worker": 2})


def test_render_to_file_and_stdout_agree(tmp_path: Path, capsys) -> None:
    args = ["--space", "s.yaml", "--image", "img:1", "--storage", "s3://b/p", "--workers", "3"]
    out_file = tmp_path / "job.yaml"
    assert cli.main(["render", *args, "-o", str(out_file)]) == 0
    assert cli.main(["render", *args]) == 0
    stdout = capsys.readouterr().out
    assert stdout == out_file.read_text()
    manifest = yaml.safe_load(stdout)
    assert manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 3


def test_config_file_with_command_line_overrides(tmp_path: Path, capsys) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **BASE,
                "storage": "s3://b/p",
                "workers": 2,
                "tolerations": ["nvidia.com/gpu:NoSchedule"],
                "node_selector": {"pool": "gpu"},
            }
        )
    )
    assert cli.main(["render", "--config", str(config), "--workers", "5"]) == 0
    (group,) = yaml.safe_load(capsys.readouterr().out)["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert group["replicas"] == 5
    assert group["template"]["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert group["template"]["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    config.write_text("workers: [1\n")
    assert cli.main(["render", "--config", str(config)]) == 2
    assert f"{config}: not valid YAML" in capsys.readouterr().err


def test_default_workdir_matches_the_dockerfile() -> None:
    workdirs = re.findall(r"^WORKDIR\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert workdirs and workdirs[-1] == field_doc(RayJobSpec, "workdir")[1]


# ---------------------------------------------------------------------------------------------
# secrets


SECRETISH = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|API_?KEY|ACCESS_KEY|PRIVATE", re.I)
SECRET_VALUES = [
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # credentials inside a URI
    re.compile(r"AKIA[0-9A-Z]{16}"),  # an AWS access key id
    re.compile(r"(password|passwd|token|secret)\s*[=:]\s*\S", re.I),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]


def secret_findings(obj: Any, path: str = "") -> list[str]:
    """Literal secrets in a manifest: secret-named env values, Secret data, secret-like text."""
    found = []
    if isinstance(obj, dict):
        if obj.get("kind") == "Secret" and (obj.get("data") or obj.get("stringData")):
            found.append(f"{path}: a Secret with literal data")
        if "name" in obj and "value" in obj and SECRETISH.search(str(obj["name"])):
            found.append(f"{path}: env {obj['name']} has a literal value")
        for key, value in obj.items():
            found += secret_findings(value, f"{path}/{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += secret_findings(value, f"{path}[{i}]")
    elif isinstance(obj, str):
        found += [f"{path}: {obj[:60]!r}" for p in SECRET_VALUES if p.search(obj)]
    return found


def mlflow_manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(MLFLOW_K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in docs if d["kind"] != "Kustomization"]  # kustomize input, not an object


def test_no_literal_secrets_in_any_manifest() -> None:
    manifests = [render(v) for v in VARIANTS] + mlflow_manifests()
    for manifest in manifests:
        assert secret_findings(manifest) == [], manifest["metadata"]
    # Every credential-looking env var is a Secret reference.
    for manifest in manifests:
        for env in _env_entries(manifest):
            if SECRETISH.search(env["name"]):
                assert "value" not in env and "secretKeyRef" in env["valueFrom"], env


def test_secret_scan_can_fail() -> None:
    leaky = render("s3-with-credentials")
    container = leaky["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][
        0
    ]
    container["env"].append({"name": "MLFLOW_TRACKING_PASSWORD", "value": "hunter2"})
    assert len(secret_findings(leaky)) == 1
    assert secret_findings({"uri": "postgresql://mlflow:hunter2@db/mlflow"})
    assert secret_findings({"apiVersion": "v1", "kind": "Secret", "stringData": {"k": "v"}})


def _env_entries(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        if isinstance(obj.get("env"), list):
            yield from obj["env"]
        for value in obj.values():
            yield from _env_entries(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _env_entries(value)


def test_tracking_uri_from_configmap_and_credentials_from_secret() -> None:
    manifest = render("s3-with-credentials")
    cluster = manifest["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
        assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"] == {
            "name": "mlflow-tracking",
            "key": "MLFLOW_TRACKING_URI",
        }
        for key in (
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ):
            assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "resbench-credentials"
            assert env[key]["valueFrom"]["secretKeyRef"]["key"] == key
    # no Secret named: no Secret references at all
    plain = render_rayjob(job_spec({**BASE, "storage": "s3://b/p"}))
    assert [e["name"] for e in _env_entries(plain)] == ["MLFLOW_TRACKING_URI"] * 2


# ---------------------------------------------------------------------------------------------
# mlflow/ deployment


def test_mlflow_manifests_validate_as_core_objects() -> None:
    kustomization = yaml.safe_load((MLFLOW_K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    files = sorted(p.name for p in MLFLOW_K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == files  # nothing left out of `kubectl apply -k`
    kinds = []
    for doc in mlflow_manifests():
        core_validate(doc)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "ConfigMap", "Deployment", "Namespace", "Service"]


def test_core_validation_can_fail() -> None:
    import kubernetes_validate

    service = next(d for d in mlflow_manifests() if d["kind"] == "Service")
    service = copy.deepcopy(service)
    service["spec"]["ports"][0]["prot"] = 5000
    with pytest.raises(kubernetes_validate.ValidationError):
        core_validate(service)


def test_mlflow_deployment_wiring() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in mlflow_manifests()}
    deployment = docs[("Deployment", "mlflow")]
    service = docs[("Service", "mlflow")]
    server_config = docs[("ConfigMap", "mlflow-server")]["data"]
    tracking = docs[("ConfigMap", "mlflow-tracking")]["data"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]

    # The Service reaches the pods, on the port the server listens on.
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    env = {e["name"]: e for e in container["env"]}
    port = int(env["MLFLOW_PORT"]["value"])
    assert container["ports"][0]["containerPort"] == port == service["spec"]["ports"][0]["port"]
    assert env["MLFLOW_HOST"]["value"] == "0.0.0.0"

    # The tracking URI the trials get is this Service, and the server accepts that Host header.
    kustomization = yaml.safe_load((MLFLOW_K8S / "kustomization.yaml").read_text())
    namespace = kustomization["namespace"]
    host = f"mlflow.{namespace}.svc.cluster.local"
    assert tracking["MLFLOW_TRACKING_URI"] == f"http://{host}:{port}"
    from fnmatch import fnmatch

    allowed = server_config["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert any(fnmatch(f"{host}:{port}", p) for p in allowed)
    assert job_spec({**BASE, "storage": "s3://b/p"}).namespace == namespace
    assert job_spec({**BASE, "storage": "s3://b/p"}).tracking_configmap == "mlflow-tracking"

    # The container runs server.sh (artifact proxy + basic auth), configured from the
    # ConfigMap; every variable it is given is one server.sh or MLflow/libpq/boto3 reads.
    assert container["command"] == ["/usr/local/bin/mlflow-server.sh"]
    script = (ROOT / "mlflow" / "server.sh").read_text()
    assert "--serve-artifacts" in script and "--artifacts-destination" in script
    assert "--app-name basic-auth" in script
    assert container["envFrom"] == [{"configMapRef": {"name": "mlflow-server"}}]
    read_elsewhere = {"PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HOME",
                      "MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_S3_ENDPOINT_URL"}  # fmt: skip
    for name in [*server_config, *env]:
        assert name in read_elsewhere or re.search(rf"\b{name}\b", script), name
    assert server_config["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert server_config["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql")
    assert server_config["MLFLOW_AUTH"] == "basic"
    secret_refs = {
        e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e
    }
    assert secret_refs == {"mlflow-secrets"}
    # The image the kustomization sets is the one the Deployment names.
    assert kustomization["images"][0]["name"] == container["image"]


def test_kustomize_build_validates() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (kustomize build)")
    out = subprocess.run(
        [kubectl, "kustomize", str(MLFLOW_K8S)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert len(docs) == 5
    for doc in docs:
        core_validate(doc)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "resbench"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/resbench-mlflow:3.17.2"


def test_server_script_is_executable_shell() -> None:
    script = ROOT / "mlflow" / "server.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert not list((ROOT / "mlflow").glob("*.py"))


# ---------------------------------------------------------------------------------------------
# Docker build inputs


def _dockerignore_keeps(ignore_file: Path, name: str) -> bool:
    """Whether a top-level path survives a deny-all .dockerignore with ``!`` re-includes."""
    lines = [ln.strip() for ln in ignore_file.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    kept = True
    for line in lines:
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        from fnmatch import fnmatch

        if fnmatch(name, pattern):
            kept = negate
    return kept


@pytest.mark.parametrize("context", [ROOT, ROOT / "mlflow"])
def test_docker_build_context_has_what_the_dockerfile_copies(context: Path) -> None:
    dockerfile = (context / "Dockerfile").read_text()
    sources = []
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M):
        words = [w for w in line.split() if not w.startswith("--")]
        sources += words[:-1]
    assert sources
    for source in sources:
        assert (context / source).exists(), source
        assert _dockerignore_keeps(context / ".dockerignore", source.rstrip("/")), source
    for heavy in (".venv", ".git", "mlflow.db", "artifacts", ".ray_results"):
        assert not _dockerignore_keeps(context / ".dockerignore", heavy), heavy


def test_trial_image_is_cuda_pytorch_with_resbench_installed() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile, re.M)
    assert base and re.fullmatch(
        r"pytorch/pytorch:2\.\d+\.\d+-cuda12\.\d+-cudnn9-runtime", base.group(1)
    )
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    assert "ray[default]" in dockerfile  # the head runs Ray's job server
    pins = re.search(
        r"^ARG MLFLOW_VERSION=(\S+)", (ROOT / "mlflow" / "Dockerfile").read_text(), re.M
    )
    kustomization = yaml.safe_load((MLFLOW_K8S / "kustomization.yaml").read_text())
    assert pins and kustomization["images"][0]["newTag"] == pins.group(1)


# ---------------------------------------------------------------------------------------------
# kubectl-driven commands


FAKE_KUBECTL = """#!{python}
# A stand-in kubectl: records each call and answers like a cluster with one RayJob.
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "-" in args else ""
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[:1] == ["--context"]:
    args = args[2:]
if args[:3] == ["get", "--raw", "/version"]:
    print(json.dumps({{"major": "1", "minor": "30"}}))
elif args[:1] == ["create"]:
    print("rayjob.ray.io/sweep-a created")
elif args[:2] == ["get", "rayjob"]:
    if args[2] != "sweep-a":
        sys.stderr.write('Error from server (NotFound): rayjobs.ray.io "%s" not found\\n' % args[2])
        sys.exit(1)
    print(json.dumps({{"metadata": {{"name": "sweep-a", "namespace": args[4]}},
        "status": {{"jobStatus": "RUNNING", "jobDeploymentStatus": "Running",
                   "rayClusterName": "sweep-a-x7k2p", "failed": 1, "succeeded": 0,
                   "startTime": "2026-11-26T10:00:00Z"}}}}))
elif args[:1] == ["logs"]:
    print("trial 3/16 val_acc=71.2")
"""


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "kubectl"
    exe.write_text(FAKE_KUBECTL.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    return log


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_submit_creates_the_rendered_rayjob(fake_kubectl: Path, capsys) -> None:
    args = ["--space", "s.yaml", "--image", "img:1", "--storage", "s3://b/p", "--name", "sweep-a"]
    assert cli.main(["submit", *args, "--context", "gpu-cluster"]) == 0
    assert "rayjob.ray.io/sweep-a created" in capsys.readouterr().out
    calls = _calls(fake_kubectl)
    assert [c["args"][:4] for c in calls] == [
        ["--context", "gpu-cluster", "get", "--raw"],
        ["--context", "gpu-cluster", "create", "-f"],
    ]
    assert cli.main(["render", *args]) == 0
    rendered = capsys.readouterr().out
    assert yaml.safe_load(calls[1]["stdin"]) == yaml.safe_load(rendered)


def test_submit_a_rendered_file(fake_kubectl: Path, tmp_path: Path, capsys) -> None:
    job = tmp_path / "job.yaml"
    args = ["--space", "s.yaml", "--image", "img:1", "--storage", "s3://b/p", "--name", "sweep-a"]
    assert cli.main(["render", *args, "-o", str(job)]) == 0
    assert cli.main(["submit", "-f", str(job)]) == 0
    assert _calls(fake_kubectl)[-1]["stdin"] == job.read_text()
    assert "logs sweep-a -n resbench --follow" in capsys.readouterr().out
    job.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    assert cli.main(["submit", "-f", str(job)]) == 2
    assert "expected RayJob manifests" in capsys.readouterr().err


def test_status_and_logs(fake_kubectl: Path, capsys) -> None:
    assert cli.main(["status", "sweep-a", "-n", "team-a"]) == 0
    out = capsys.readouterr().out
    assert "rayjob/sweep-a (namespace team-a)" in out
    assert "RUNNING" in out and "sweep-a-x7k2p" in out and "failed=1" in out
    assert cli.main(["status", "sweep-a", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["jobDeploymentStatus"] == "Running"
    assert cli.main(["status", "nope"]) == 1
    assert "not found" in capsys.readouterr().err

    assert cli.main(["logs", "sweep-a", "-f"]) == 0
    assert cli.main(["logs", "sweep-a", "--head"]) == 0
    logs = [c["args"] for c in _calls(fake_kubectl) if c["args"][0] == "logs"]
    assert logs[0] == ["logs", "-n", "resbench", "job/sweep-a", "--follow"]
    assert logs[1][:4] == ["logs", "-n", "resbench", "-l"]
    assert logs[1][4] == "ray.io/cluster=sweep-a-x7k2p,ray.io/node-type=head"


def test_status_lines_without_status() -> None:
    lines = status_lines({"metadata": {"name": "x", "namespace": "y"}})
    assert lines[0] == "rayjob/x (namespace y)" and "job status:" in lines[1]


def test_without_kubectl_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    for argv in (
        ["status", "x"],
        ["logs", "x"],
        ["submit", "--space", "s", "--image", "i", "--storage", "s3://b/p"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "launchers.k8s", *argv], cwd=ROOT, env=env,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: kubectl not found on PATH"), result.stderr


def test_unreachable_cluster_exit_2(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "launchers.k8s", "status", "sweep-a"], cwd=ROOT, env=env,
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: no Kubernetes cluster reachable with kubectl")
    assert result.stderr.count("\n") == 1
