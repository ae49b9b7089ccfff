"""Re-rooting recorded artifact locations onto the configured store, without a server."""

from __future__ import annotations

import pytest

from src.errors import ModelLoadError
from src.services.model_store import _local_dir, store_root

EXPERIMENT = "591657279921788228"
RUN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "served" / "mlruns"
    (root / EXPERIMENT / RUN / "artifacts").mkdir(parents=True)
    (root / EXPERIMENT / "models" / "m-abc" / "artifacts").mkdir(parents=True)
    return root.resolve()


@pytest.mark.parametrize(
    ("recorded", "relative"),
    [
        # written on a Linux host elsewhere
        (f"file:///home/ana/hvs/mlruns/{EXPERIMENT}/{RUN}/artifacts", f"{RUN}/artifacts"),
        # MLflow 3 logged model
        (
            f"file:///home/ana/hvs/mlruns/{EXPERIMENT}/models/m-abc/artifacts",
            "models/m-abc/artifacts",
        ),
        # written on Windows: as a file URI and as a plain path
        (f"file:///C:/Users/op/hvs/mlruns/{EXPERIMENT}/{RUN}/artifacts", f"{RUN}/artifacts"),
        (f"C:\\Users\\op\\hvs\\mlruns\\{EXPERIMENT}\\{RUN}\\artifacts", f"{RUN}/artifacts"),
        # percent-encoded spaces
        (f"file:///C:/Users/My%20Name/mlruns/{EXPERIMENT}/{RUN}/artifacts", f"{RUN}/artifacts"),
        # the store sat under a folder whose name is the experiment id: the last one counts
        (f"file:///data/{EXPERIMENT}/mlruns/{EXPERIMENT}/{RUN}/artifacts", f"{RUN}/artifacts"),
    ],
)
def test_recorded_locations_are_rerooted_onto_the_store(store, recorded, relative):
    assert _local_dir(recorded, store, EXPERIMENT) == store / EXPERIMENT / relative


def test_a_recorded_path_that_exists_elsewhere_is_still_rerooted(store, tmp_path):
    """A copy of a store is served from its own files, never from the original's."""
    original = tmp_path / "original" / "mlruns" / EXPERIMENT / RUN / "artifacts"
    original.mkdir(parents=True)
    assert (
        _local_dir(original.as_uri(), store, EXPERIMENT) == store / EXPERIMENT / RUN / "artifacts"
    )


def test_a_symlink_out_of_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (store / EXPERIMENT / "models" / "m-evil").symlink_to(outside)
    recorded = f"file:///x/mlruns/{EXPERIMENT}/models/m-evil"
    with pytest.raises(ModelLoadError, match="outside the store"):
        _local_dir(recorded, store, EXPERIMENT)


@pytest.mark.parametrize(
    ("recorded", "message"),
    [
        ("s3://bucket/mlruns/1/abc/artifacts", "not in a local store"),
        ("file:///somewhere/else/artifacts", "does not contain the experiment folder"),
    ],
)
def test_locations_that_cannot_be_mapped_say_why(store, recorded, message):
    with pytest.raises(ModelLoadError, match=message):
        _local_dir(recorded, store, EXPERIMENT)


def test_store_root_accepts_uris_and_paths_and_refuses_other_schemes(tmp_path):
    assert store_root(tmp_path.as_uri()) == tmp_path.resolve()
    assert store_root(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(ModelLoadError, match="neither a local MLflow store nor an http"):
        store_root("s3://bucket/mlruns")
