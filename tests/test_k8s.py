"""The Kubernetes manifests (k8s/), offline: every overlay rendered by `kubectl kustomize`,
every document validated strictly against the API's schemas, a checkov policy scan with
zero findings beyond k8s/policy/checkov-allowlist.yaml, and the numbers that must agree
(grace period, probes, settings) checked against each other. No cluster is needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from src.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
K8S = PROJECT_ROOT / "k8s"
OVERLAYS = ("single-node", "production", "production-mlflow")
STANDALONE = (K8S / "components" / "model-pvc" / "mlruns-loader.yaml",)
"""Manifests applied by hand (`kubectl apply -f`), outside any kustomization."""
KUBERNETES_VERSIONS = ("1.31", "1.37")
"""Validated against: 1.31 (the oldest minor still supported by the major clouds when
this was written, and what docs/kubernetes.md states) and the newest schema the pinned
kubernetes-validate ships."""
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin"
CHECKOV = PROJECT_ROOT / ".venv" / "checkov" / "bin" / "checkov"
READ_ELSEWHERE = {
    # read by the image or its libraries, not by src/settings.py
    "HOME": "the image's $HOME (/tmp)",
    "MLFLOW_ALLOW_FILE_STORE": "MLflow itself",
    "MLFLOW_DISABLE_TELEMETRY": "MLflow itself",
}


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (it renders the kustomizations; no cluster needed)")
    return kubectl


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each overlay's `kubectl kustomize` output, one file per overlay."""
    folder = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [_kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"kubectl kustomize {overlay}:\n{result.stderr}"
        files[overlay] = folder / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout)
    for path in STANDALONE:
        files[path.name] = folder / path.name
        shutil.copy(path, files[path.name])
    return files


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def settings_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]


def api_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "Deployment", "hvs-prediction-api")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "api")


# ------------------------------------------------------------------ schema validation


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(rendered, version):
    result = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "--strict", "-k", version, "--quiet"]
        + [str(path) for path in rendered.values()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(documents(path)) for path in rendered.values())
    assert count >= 30, f"only {count} documents rendered"


def test_strict_validation_rejects_a_misspelt_field(tmp_path):
    """The validator is not a no-op: an unknown field (a typo) fails it."""
    bad = documents(K8S / "base" / "service.yaml")[0]
    bad["spec"]["selektor"] = bad["spec"].pop("selector")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [
            str(VENV_BIN / "kubernetes-validate"),
            "--strict",
            "-k",
            KUBERNETES_VERSIONS[0],
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "selektor" in result.stdout + result.stderr


# ------------------------------------------------------------------ policy scan


def test_checkov_finds_nothing_beyond_the_allow_list(rendered, tmp_path):
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `bash tools/test_deps.sh` (make test-python does)")
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    for path in rendered.values():
        shutil.copy(path, scanned / path.name)
    env = {
        **os.environ,
        # offline: no version check against PyPI (at import), no policy metadata download
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
        "HOME": str(tmp_path),  # its caches, not the developer's
    }
    result = subprocess.run(
        [str(CHECKOV), "--skip-download", "--framework", "kubernetes", "--directory",
         str(scanned), "--output", "json", "--quiet", "--compact"],
        capture_output=True, text=True, timeout=300, env=env, check=False, cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = {
        (check["check_id"], check["resource"])
        for one_report in reports
        for check in one_report["results"]["failed_checks"]
    }
    passed = sum(one_report["summary"]["passed"] for one_report in reports)
    assert passed > 100, f"checkov passed only {passed} checks:\n{result.stderr}"

    allowed = {
        (entry["check"], resource): entry["reason"]
        for entry in yaml.safe_load((K8S / "policy" / "checkov-allowlist.yaml").read_text())
        for resource in entry["resources"]
    }
    assert all(len(reason) > 40 for reason in allowed.values()), "each skip needs its reason"
    unexplained = sorted(failed - allowed.keys())
    assert not unexplained, f"checkov findings with no reason in the allow-list: {unexplained}"
    stale = sorted(allowed.keys() - failed)
    assert not stale, f"allow-list entries that match no finding any more: {stale}"


# ------------------------------------------------------------------ what must agree


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_fits_the_grace_period(rendered, overlay):
    """preStop sleep, then SIGTERM: the drain, the graceful stop, Python's exit (measured
    1-4 s, docs/container.md), all inside terminationGracePeriodSeconds; the preStop pause
    shorter than the drain (docs/kubernetes.md, "Stopping")."""
    docs = documents(rendered[overlay])
    pod = one(docs, "Deployment", "hvs-prediction-api")["spec"]["template"]["spec"]
    settings = settings_of(docs)
    pre_stop = api_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "/bin/sleep"
    sleep_s = float(pre_stop[1])
    drain_s = float(settings["HVS_DRAIN_SECONDS"])
    graceful_s = float(settings["GUNICORN_GRACEFUL_TIMEOUT"])
    exit_s = 5.0
    assert 0 < sleep_s < drain_s
    assert pod["terminationGracePeriodSeconds"] > sleep_s + drain_s + graceful_s + exit_s


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_hardening(rendered, overlay):
    docs = documents(rendered[overlay])
    container = api_container(docs)
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"  # 200 while draining
    assert container["ports"] == [{"name": "http", "containerPort": 5001, "protocol": "TCP"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    pod = one(docs, "Deployment", "hvs-prediction-api")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
    assert pod["automountServiceAccountToken"] is False
    for kind in ("Deployment", "StatefulSet"):
        for workload in (doc for doc in docs if doc["kind"] == kind):
            spec = workload["spec"]["template"]["spec"]
            for each in spec["containers"] + spec.get("initContainers", []):
                assert each["securityContext"]["readOnlyRootFilesystem"] is True, each["name"]
                assert "limits" in each["resources"], each["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_paths_and_the_metrics_folder_in_memory(rendered, overlay):
    docs = documents(rendered[overlay])
    pod = one(docs, "Deployment", "hvs-prediction-api")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in api_container(docs)["volumeMounts"]}
    metrics_dir = settings_of(docs)["PROMETHEUS_MULTIPROC_DIR"]
    assert volumes[mounts[metrics_dir]]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in volumes[mounts["/tmp"]]  # nginx's socket and buffers, history file
    model_mounts = [m for m in api_container(docs)["volumeMounts"] if m["name"] == "mlruns"]
    if settings_of(docs)["MLFLOW_TRACKING_URI"].startswith("file:"):
        assert [(m["mountPath"], m["readOnly"]) for m in model_mounts] == [("/app/mlruns", True)]
    else:
        assert model_mounts == []  # from the tracking server: no volume


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_is_one_the_service_reads(rendered, overlay):
    """A misspelt variable would be ignored silently (the settings ignore unknown names)."""
    known = {
        field.validation_alias
        for field in Settings.model_fields.values()
        if isinstance(field.validation_alias, str)
    }
    settings = settings_of(documents(rendered[overlay]))
    unknown = sorted(set(settings) - known - READ_ELSEWHERE.keys())
    assert not unknown, f"{overlay}: not settings of the service: {unknown}"
    for name in ("HVS_DRAIN_SECONDS", "GUNICORN_GRACEFUL_TIMEOUT", "WEB_CONCURRENCY"):
        assert name in settings
    # values the typed settings accept (the run id aside: the operator fills it in)
    values = {k: v for k, v in settings.items() if k in known}
    if "MODEL_URI" not in values:
        values["BEST_MLFLOW_RUN_ID"] = "0" * 32
    Settings(**values)


def test_single_node_is_one_replica_on_the_embedded_store(rendered):
    docs = documents(rendered["single-node"])
    assert one(docs, "Deployment", "hvs-prediction-api")["spec"]["replicas"] == 1
    assert not [doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"]
    assert not [doc for doc in docs if doc["kind"] == "StatefulSet"]
    assert "HVS_HISTORY_URL" not in settings_of(docs)
    claim = one(docs, "PersistentVolumeClaim", "hvs-mlruns")
    pod = one(docs, "Deployment", "hvs-prediction-api")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "mlruns")
    assert volume["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"],
        "readOnly": True,
    }


@pytest.mark.parametrize("overlay", ["production", "production-mlflow"])
def test_production_shares_history_in_redis(rendered, overlay):
    docs = documents(rendered[overlay])
    settings = settings_of(docs)
    host = settings["HVS_HISTORY_URL"].removeprefix("redis://").split(":")[0]
    service = one(docs, "Service", host)
    redis = one(docs, "StatefulSet", "hvs-redis")
    assert redis["spec"]["replicas"] == 1
    assert (
        service["spec"]["selector"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] >= 2
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {
        "hvs"
    }


def test_model_sources(rendered):
    bundle = documents(rendered["production"])
    pod = one(bundle, "Deployment", "hvs-prediction-api")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["cp", "-a", "/bundle/mlruns/.", "/app/mlruns/"]
    assert {"name": "mlruns", "emptyDir": {"sizeLimit": "512Mi"}} in pod["volumes"]
    assert "BEST_MLFLOW_RUN_ID" in settings_of(bundle)

    server = settings_of(documents(rendered["production-mlflow"]))
    assert server["MODEL_URI"] == "models:/hvs@production"
    assert server["MLFLOW_TRACKING_URI"].startswith("http://")
