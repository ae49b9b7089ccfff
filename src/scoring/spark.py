"""Batch scoring on Apache Spark: the same scores as `batch.py`, for fleets of any size.

    scorer = SparkScorer(spark, settings)                  # reads the run once, on the driver
    scores = scorer.score(readings)                        # a Spark DataFrame, lazily
    frame = scorer.score_pandas(read_telemetry("fleet/"))  # or a validated pandas frame

`readings.groupBy("module_id").applyInPandas(...)` hands each module's whole series to
Python as one pandas frame, and `batch.score_modules` scores it through
`PredictionService.predict` with history off: the project's own feature and scoring code,
so the features are exactly the single-machine path's (tests/test_scoring.py checks it).

The model reaches the executors as bytes, not as a path: the driver locates the run with
`load_run_artifacts` (which checks it fits this code), packs the run's part of the MLflow
file store into one archive, loads a service from that archive itself (so the bytes
shipped are bytes that passed every check, signature included when a key is set), and
broadcasts it. Each Python worker unpacks it once into a temporary store and loads its
`PredictionService` through the very code gunicorn's workers use (digests verified again
there). The executors need neither the store nor the driver's files.

pyspark is a development / batch dependency (requirements-dev.txt), never in the serving
image; nothing else in the project imports this module.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.levels import Thresholds
from src.scoring.batch import (
    CHEMISTRY_COLUMN,
    INPUT_COLUMNS,
    KEY_COLUMNS,
    score_modules,
    scoring_settings,
)
from src.services.model_loader import load_run_artifacts
from src.services.prediction_service import PredictionService
from src.settings import Settings

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

logger = logging.getLogger(__name__)

# pyspark 4.3 warns on every pandas conversion that it does not fully support pandas 3;
# the conversions used here (doubles, longs, booleans, strings) are checked to the last
# bit against batch.py by tests/test_scoring.py, so the warning says nothing here.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)
warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module=r"pyspark\.")
# py4j logs every connection at INFO, and does so from __del__ at interpreter exit, when
# the logging streams may already be closed.
logging.getLogger("py4j").setLevel(logging.WARNING)

JAVA_INSTALL_HINT = "apt-get install -y openjdk-17-jre-headless"
MIN_JAVA = 17
PYSPARK_INSTALL_HINT = "pip install -r requirements-dev.txt (pyspark is a dev/batch extra)"

# The settings an executor's service is built with: what shapes the model and its load.
# Tokens, the server and the history store play no part in scoring, and a signing key
# file exists only on the driver, where the archive's signature was already checked.
_EXECUTOR_SETTINGS = ("model_artifact_name", "xgboost_nthread")


class SparkUnavailableError(RuntimeError):
    """pyspark or Java is missing; the message says what to install."""


@dataclass(frozen=True)
class RunArchive:
    """A run's part of an MLflow file store, as bytes, and what to load it with."""

    run_id: str
    data: bytes
    """An uncompressed tar of `<experiment>/meta.yaml`, the run's folder and its logged
    models' folders: the smallest store `locate_run` finds the run in."""
    settings: dict[str, Any]
    """Settings by variable name (BEST_MLFLOW_RUN_ID, HVS_...), without the store's URI."""


# -- the model as bytes ---------------------------------------------------------------------


def pack_run(settings: Settings) -> RunArchive:
    """The configured run's files as a RunArchive; ModelLoadError if the run cannot be served.

    Read once, on the driver: `load_run_artifacts` locates and checks the run, then only
    the folders a store needs to resolve that one run are packed (not the whole store).
    """
    artifacts = load_run_artifacts(settings)
    location = artifacts.location
    root = location.store_root
    experiment = root / location.experiment_id
    run_folder = experiment / location.run_id
    folders = [run_folder]
    # MLflow 3 logged models live beside the runs; the run names them in `outputs/`.
    outputs = run_folder / "outputs"
    if outputs.is_dir():
        folders += [experiment / "models" / o.name for o in sorted(outputs.iterdir())]
    if not location.model_dir.is_relative_to(run_folder):
        folders.append(_logged_model_folder(location.model_dir, experiment))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(experiment / "meta.yaml", arcname=f"{location.experiment_id}/meta.yaml")
        for folder in dict.fromkeys(folders):  # in order, once each
            if folder.is_dir():
                archive.add(folder, arcname=str(folder.relative_to(root)))
    fields = {name: getattr(settings, name) for name in _EXECUTOR_SETTINGS}
    values = {_alias(name): value for name, value in fields.items()}
    values["BEST_MLFLOW_RUN_ID"] = location.run_id
    return RunArchive(run_id=location.run_id, data=buffer.getvalue(), settings=values)


def _logged_model_folder(model_dir: Path, experiment: Path) -> Path:
    """The `<experiment>/models/<id>` folder holding model_dir."""
    models = experiment / "models"
    for parent in model_dir.parents:
        if parent.parent == models:
            return parent
    return model_dir


def _alias(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    assert isinstance(alias, str)
    return alias


def load_archive(archive: RunArchive, settings: Settings | None = None) -> PredictionService:
    """A loaded scoring service (history off) from a RunArchive.

    The archive is unpacked into a temporary store, loaded by the service's own code and
    removed again: the model is in memory by then. settings: the driver's own (its
    signing key file, if any, is then checked too); None builds them from the archive.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"hvs-run-{archive.run_id[:8]}-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r") as tar:
            tar.extractall(folder, filter="data")  # no absolute paths, links out, devices
        (folder / ".trash").mkdir(exist_ok=True)  # MLflow opens a store only with one
        if settings is None:
            settings = Settings(**archive.settings, HVS_VERIFY_DIGESTS=True)
        service = PredictionService(
            scoring_settings(settings.model_copy(update={"mlflow_tracking_uri": folder.as_uri()}))
        )
        service.load()
        return service
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Spark reuses each Python worker for many tasks (spark.python.worker.reuse, on by
# default), and a worker scores many modules: loading the model per module or per task
# would cost far more than scoring a module. A module-level cache makes it once per
# worker process. It is keyed by the broadcast (each SparkScorer's broadcast gets a fresh
# key; a worker's Broadcast object does not expose Spark's own id), not by the run id, so
# a long-lived worker that serves a second job (another run, or the same run id re-packed
# after its files changed) never scores with a stale model.
_SERVICES: dict[str, PredictionService] = {}


def _service_of(key: str, broadcast: Broadcast) -> PredictionService:
    service = _SERVICES.get(key)
    if service is None:
        service = load_archive(broadcast.value)
        _SERVICES.clear()  # one model per worker: an earlier job's is no longer needed
        _SERVICES[key] = service
    return service


# -- Spark ----------------------------------------------------------------------------------


def check_spark_available() -> None:
    """Raise SparkUnavailableError, saying what to install, unless pyspark and Java work."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailableError(f"pyspark is not installed: {PYSPARK_INSTALL_HINT}") from None
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).exists():
        where = f"JAVA_HOME={java_home} has no bin/java" if java_home else "no java on PATH"
        raise SparkUnavailableError(
            f"Spark needs a Java 17+ runtime and none was found ({where}): {JAVA_INSTALL_HINT}"
        )
    try:
        done = subprocess.run([java, "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise SparkUnavailableError(
            f"`{java} -version` failed ({error}); Spark needs a working Java 17+ runtime: "
            f"{JAVA_INSTALL_HINT}"
        ) from None
    major = _java_major(done.stderr.decode(errors="replace") + done.stdout.decode(errors="replace"))
    if major is not None and major < MIN_JAVA:
        raise SparkUnavailableError(
            f"{java} is Java {major}; pyspark 4 needs Java {MIN_JAVA}+: {JAVA_INSTALL_HINT} "
            "(and point JAVA_HOME at it)"
        )


def _java_major(version_text: str) -> int | None:
    """17 of `openjdk version "17.0.15"`, 8 of `"1.8.0_392"`; None if not found."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if found is None:
        return None
    first = int(found.group(1))
    return int(found.group(2) or 0) if first == 1 else first


def spark_session(master: str | None = "local[2]", app_name: str = "hvs-scoring") -> SparkSession:
    """A SparkSession for scoring; master None: the one spark-submit was given (local[*]
    when run by python itself).

    Workers run this interpreter (so they import the same project and packages), Arrow
    carries the frames between the JVM and Python, and a local session stays small.
    """
    check_spark_available()
    from pyspark.sql import SparkSession

    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
        # Run by `python`, not by spark-submit (which starts the JVM first and says so in
        # this variable): Spark's own default, made explicit so the local settings apply.
        master = "local[*]"
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):
            # Local mode: workers are this machine's processes, so this interpreter (the
            # project's venv) is theirs too; pyspark reads only the variable, and without
            # it starts `python3`, which lacks the project's packages. An operator's wins.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            # Few partitions: a shuffle into the default 200 is all overhead here.
            cores = _local_cores(master)
            builder = (
                builder.config("spark.sql.shuffle.partitions", str(2 * cores))
                .config("spark.default.parallelism", str(2 * cores))
                .config("spark.ui.enabled", "false")
                # A local session talks only to itself: on loopback, not on the host's
                # address (Spark's default), so nothing listens beyond this machine.
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.driver.host", "127.0.0.1")
            )
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _local_cores(master: str) -> int:
    inside = master.partition("[")[2].rstrip("]")
    if inside in ("", "*"):
        return os.cpu_count() or 1
    return int(inside.split(",")[0])


def input_schema() -> StructType:
    """What scoring reads: module_id, timestamp_s (epoch seconds), the 14 signals and the
    chemistry (null: not given)."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    fields = [StructField("module_id", StringType(), False)]
    fields += [StructField("timestamp_s", DoubleType(), False)]
    fields += [StructField(name, DoubleType(), True) for name in SIGNAL_NAMES]
    fields += [StructField(CHEMISTRY_COLUMN, StringType(), True)]
    return StructType(fields)


def _spark_type(values: pd.Series) -> DataType:
    from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType

    kind = values.dtype.kind
    if kind == "b":
        return BooleanType()
    if kind in "iu":
        return LongType()
    if kind == "f":
        return DoubleType()
    return StringType()


def output_schema(service: PredictionService) -> StructType:
    """The scores' schema, taken from what the service answers for a probe module, so that
    a field added to Predictions appears in Spark's output as in batch.py's."""
    from pyspark.sql.types import StructField, StructType

    references = np.array([[signal.reference for signal in SIGNALS]] * 3)
    probe = pd.DataFrame(references, columns=list(SIGNAL_NAMES))
    probe.insert(0, "timestamp_s", 1_767_225_600.0 + 10.0 * np.arange(3))
    probe.insert(0, "module_id", "schema-probe")
    scores = score_modules(service, probe)
    return StructType(
        [StructField(name, _spark_type(scores[name]), True) for name in scores.columns]
    )


class SparkScorer:
    """Scores Spark DataFrames of readings with one run, shipped once as a broadcast."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.archive = pack_run(settings)
        # The driver's own load of the archive: proves the bytes about to be shipped load
        # (with the signing key, when one is set), and gives the thresholds and the schema.
        self.service = load_archive(self.archive, settings)
        self.schema = output_schema(self.service)
        self._broadcast = spark.sparkContext.broadcast(self.archive)
        self._key = uuid.uuid4().hex
        logger.info(
            "broadcast run %s (%d bytes) to the executors",
            self.archive.run_id,
            len(self.archive.data),
        )

    @property
    def thresholds(self) -> Thresholds:
        return self.service.model.thresholds

    @property
    def model_version(self) -> str:
        return self.service.model.run_id

    def score(self, readings: DataFrame) -> DataFrame:
        """Scores of every reading (a lazy DataFrame; rows in no particular order).

        readings needs module_id, timestamp_s, the 14 signals and chemistry (input_schema;
        read_telemetry_spark gives them); each module's rows must be all its readings,
        validated as read_telemetry validates.
        """
        key, broadcast, schema = self._key, self._broadcast, self.schema
        names = schema.fieldNames()

        def score_group(module: pd.DataFrame) -> pd.DataFrame:
            return score_modules(_service_of(key, broadcast), module)[names]

        columns = readings.select(*INPUT_COLUMNS, CHEMISTRY_COLUMN)
        return columns.groupBy("module_id").applyInPandas(score_group, schema)

    def dataframe(self, telemetry: pd.DataFrame) -> DataFrame:
        """A validated pandas frame (read_telemetry's) as a Spark DataFrame of readings."""
        frame = telemetry.loc[:, list(INPUT_COLUMNS)]
        given = telemetry[CHEMISTRY_COLUMN] if CHEMISTRY_COLUMN in telemetry.columns else None
        frame[CHEMISTRY_COLUMN] = (
            None if given is None else [v if isinstance(v, str) and v else None for v in given]
        )
        return self.spark.createDataFrame(frame, schema=input_schema())

    def score_pandas(self, telemetry: pd.DataFrame) -> pd.DataFrame:
        """Scores of a validated pandas frame through Spark, collected and sorted by
        (module_id, timestamp_s), as batch.score_telemetry returns them."""
        return self.collect(self.score(self.dataframe(telemetry)))

    @staticmethod
    def collect(scores: DataFrame) -> pd.DataFrame:
        """score()'s rows on the driver, sorted by (module_id, timestamp_s). For a fleet
        too big for the driver, write score()'s DataFrame with Spark's own writer instead."""
        frame = scores.toPandas()
        return frame.sort_values(list(KEY_COLUMNS), kind="stable", ignore_index=True)

    def close(self) -> None:
        """Free the broadcast on the executors (the session stays the caller's)."""
        self._broadcast.destroy()
