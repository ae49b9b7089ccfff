"""The files a training run logs and the service reads: names, digests, one contract.

Every artifact's SHA-256 is recorded in `manifest.json` at training time and checked
before anything is read, so a swapped or corrupted file in a shared `mlruns` folder is
refused instead of served. (A digest list kept beside the files it covers guards against
corruption and mistakes, not against someone who can write to the store.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from src.errors import ModelLoadError

SCALER_FILE = "scaler.joblib"
"""The fitted scaler pickled, for Python users of a run; the service never reads it."""
SERVING_CONFIG_FILE = "serving_config.json"
BASELINE_FILE = "baseline.json"
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
"""Optional ONNX copy of the booster for small requests (src/model_onnx.py)."""
MODEL_FILE = "model.ubj"
"""File name mlflow.xgboost gives the booster inside the logged model folder."""
MODEL_DIGESTED_FILES = ("MLmodel", MODEL_FILE)
"""What the service reads of the logged model folder (MLflow adds files it does not read)."""

SIGNATURE_FILE = "manifest.sig"
"""HMAC-SHA256 of manifest.json with an operator's key (optional): with the key given to
the service, a writable store is no longer enough to change the model."""

MANIFEST_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digest_folder(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below folder, keyed by its POSIX path relative to folder."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def build_manifest(run_files: dict[str, str], model_files: dict[str, str]) -> dict[str, Any]:
    return {"version": MANIFEST_VERSION, "run_artifacts": run_files, "model": model_files}


def verify_manifest(artifacts_dir: Path, model_dir: Path) -> dict[str, Any]:
    """Check every file the manifest names against its digest; return the manifest."""
    manifest_path = artifacts_dir / MANIFEST_FILE
    manifest = read_json(manifest_path)
    problems: list[str] = []
    for section, folder in (("run_artifacts", artifacts_dir), ("model", model_dir)):
        for relative, expected in manifest.get(section, {}).items():
            path = folder / relative
            if not path.is_file():
                problems.append(f"{path} is missing")
            elif sha256_file(path) != expected:
                problems.append(f"{path} does not match its recorded SHA-256")
    if SERVING_CONFIG_FILE not in manifest.get("run_artifacts", {}):
        problems.append(f"the manifest records no digest for {SERVING_CONFIG_FILE}")
    if MODEL_FILE not in manifest.get("model", {}):
        problems.append(f"the manifest records no digest for the model's {MODEL_FILE}")
    if problems:
        raise ModelLoadError(
            "artifact integrity check failed: "
            + "; ".join(problems)
            + ". Re-train, or copy the run's folders again from the machine that trained it",
        )
    return manifest


def read_signing_key(path: str | Path) -> bytes:
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise ModelLoadError(
            f"the signing key file {path} cannot be read ({error.strerror}); mount it, or "
            "unset HVS_MODEL_SIGNING_KEY_FILE"
        ) from None
    if len(key) < 16:
        raise ModelLoadError(
            f"the signing key in {path} is shorter than 16 bytes; use a longer one"
        )
    return key


def sign_manifest(manifest_path: Path, key: bytes) -> str:
    return hmac.new(key, manifest_path.read_bytes(), hashlib.sha256).hexdigest()


def verify_signature(artifacts_dir: Path, key: bytes) -> None:
    """The run's manifest must carry this key's signature; it covers every artifact's
    digest, so together with verify_manifest it covers every file."""
    signature_path = artifacts_dir / SIGNATURE_FILE
    try:
        recorded = signature_path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise ModelLoadError(
            f"the run at {artifacts_dir} has no readable {SIGNATURE_FILE}, and the service "
            "requires runs signed with its key (HVS_MODEL_SIGNING_KEY_FILE): train with "
            "--signing-key-file, or unset the key to serve unsigned runs"
        ) from None
    expected = sign_manifest(artifacts_dir / MANIFEST_FILE, key)
    if not hmac.compare_digest(recorded, expected):
        raise ModelLoadError(
            f"the signature of the run at {artifacts_dir} does not match the service's key: "
            "its manifest was changed after signing, or it was signed with another key"
        )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelLoadError(
            f"{path.name} was not found at {path}; the run was not made by this project's "
            "training, or its artifacts folder was not copied"
        ) from error
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} could not be read as JSON: {error}") from error
