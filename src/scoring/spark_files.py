"""Telemetry files read and validated by Spark's executors, with the project's own reader.

For a fleet whose files do not fit the driver: one task per file runs `read_telemetry` on
that file, so every check on a file's own rows (columns, types, units, ranges, ids,
timestamps, duplicates and rack/chemistry within the file) is exactly the single-machine
one, and timestamps are converted as the API converts them. What only shows across files
(the same module and moment in two files, a module with two racks or chemistries) is
checked here in Spark, with the same kinds of problem and the same rule: a reading that
two files hold with the same values is kept once (an export run twice), one held with
other values is a problem. All problems, of all files, are raised together
in one `TelemetryValidationError`, as `read_telemetry` raises them.

Spark's own CSV reader is not used on purpose: it would parse timestamps and numbers its
own way, and a reading's features depend on its timestamp to the microsecond. Every file
must be readable at the same path by the driver (which lists the folder) and by each
executor (a shared file system, e.g. NFS or a mounted object store).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from src.data import file_columns as fc
from src.data.signals import SIGNAL_NAMES
from src.data.telemetry_checks import Problem, ProblemLog, TelemetryValidationError, where
from src.data.telemetry_files import read_telemetry
from src.scoring.batch import INPUT_COLUMNS

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

OPTIONAL_COLUMNS: tuple[str, ...] = ("rack_id", "chemistry")
SOURCE_COLUMNS: tuple[str, ...] = ("file_index", "source_file", "source_row")
READ_COLUMNS: tuple[str, ...] = (*INPUT_COLUMNS, *OPTIONAL_COLUMNS, *SOURCE_COLUMNS)
"""What read_files gives: scoring's columns, rack and chemistry (null when a file has
none), and each reading's file (its position in name order, and name) and row."""

_PROBLEMS = "problems"


def _schema(with_problems: bool = True) -> StructType:
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    fields = [StructField("module_id", StringType()), StructField("timestamp_s", DoubleType())]
    fields += [StructField(name, DoubleType()) for name in SIGNAL_NAMES]
    fields += [StructField(name, StringType()) for name in OPTIONAL_COLUMNS]
    fields += [StructField("file_index", LongType()), StructField("source_file", StringType())]
    fields += [StructField("source_row", LongType())]
    if with_problems:
        fields.append(StructField(_PROBLEMS, StringType()))
    return StructType(fields)


def _read_each(files: Iterator[pd.DataFrame], check_units: bool) -> Iterator[pd.DataFrame]:
    """In an executor: each listed file through read_telemetry; its readings, or one row
    holding its problems as JSON."""
    for listing in files:
        for index, path in zip(listing["file_index"], listing["path"], strict=True):
            try:
                frame = read_telemetry(path, check_units=check_units)
            except TelemetryValidationError as error:
                problems = [asdict(problem) for problem in error.problems]
                text = json.dumps({"problems": problems, "counts": dict(error.counts)})
                empty = {name: [None] for name in READ_COLUMNS}
                yield pd.DataFrame({**empty, "file_index": [int(index)], _PROBLEMS: [text]})
                continue
            out = pd.DataFrame({name: frame[name] for name in INPUT_COLUMNS})
            for name in OPTIONAL_COLUMNS:
                out[name] = frame[name].astype(object) if name in frame.columns else None
            out["file_index"] = np.int64(index)
            out["source_file"] = frame["source_file"].astype(str)
            out["source_row"] = frame["source_row"].astype(np.int64)
            out[_PROBLEMS] = None
            yield out


def read_telemetry_spark(
    spark: SparkSession, path: str | Path, *, check_units: bool = True
) -> DataFrame:
    """Every reading of a file or folder, read and checked on the executors (READ_COLUMNS),
    persisted; raises TelemetryValidationError with every problem found, as read_telemetry.
    Unpersist the result when done with it."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    what = f"telemetry files at {path}"
    log = ProblemLog()
    files = fc.list_files(path, log)
    log.raise_if_any(what)
    listing = spark.createDataFrame(
        spark.sparkContext.parallelize(
            [(index, str(file)) for index, (file, _shown) in enumerate(files)], len(files)
        ),
        "file_index long, path string",
    )
    read = listing.mapInPandas(
        lambda frames: _read_each(frames, check_units), schema=_schema()
    ).persist(StorageLevel.MEMORY_AND_DISK)
    failed = read.filter(F.col(_PROBLEMS).isNotNull()).orderBy("file_index")
    for row in failed.select(_PROBLEMS).collect():
        found = json.loads(row[_PROBLEMS])
        problems = [Problem(**problem) for problem in found["problems"]]
        for kind, count in found["counts"].items():
            log.extend(kind, count, [p for p in problems if p.kind == kind])
    readings = read.filter(F.col(_PROBLEMS).isNull()).drop(_PROBLEMS)
    if len(files) > 1:
        readings = _check_across_files(readings, log)
    if not log and readings.limit(1).count() == 0:
        log.add(Problem("unreadable_file", f"{path}: no readings; the files are empty"))
    if log:
        read.unpersist()
        log.raise_if_any(what)
    return readings


def _check_across_files(readings: DataFrame, log: ProblemLog) -> DataFrame:
    """What read_telemetry checks across its files: the same module and moment twice, and
    a module with two racks or chemistries. Within one file, the executor did it. Returns
    the readings with a reading repeated exactly (same values) in another file kept once,
    in the first file."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    place = F.struct("file_index", "source_row", "source_file")
    # The signals as one value (nulls included), to tell a copy from a conflict.
    values = F.to_json(F.array(*(F.col(name).cast("string") for name in SIGNAL_NAMES)))
    repeated = (
        readings.groupBy("module_id", "timestamp_s")
        .agg(
            F.count("*").alias("n"),
            F.size(F.collect_set(values)).alias("distinct"),
            F.sort_array(F.collect_list(F.struct(place.alias("place"), values))).alias("all"),
        )
        .filter(F.col("n") > 1)
        .persist()
    )
    conflicting = repeated.filter(F.col("distinct") > 1)
    total = conflicting.agg(F.sum(F.col("n") - 1)).first()[0] or 0
    if total:
        shown = conflicting.orderBy(F.col("all")[1]["place"]).limit(log.limit).collect()
        log.extend("duplicate_reading", int(total), _duplicates(shown))
    copies = repeated.filter(F.col("distinct") == 1).agg(F.sum(F.col("n") - 1)).first()[0] or 0
    repeated.unpersist()
    if copies:
        logger.info("%d reading(s) held by two files with the same values, kept once", copies)
        first = Window.partitionBy("module_id", "timestamp_s").orderBy("file_index", "source_row")
        readings = (
            readings.withColumn("_copy", F.row_number().over(first))
            .filter(F.col("_copy") == 1)
            .drop("_copy")
        )
    for column in OPTIONAL_COLUMNS:
        values = (
            readings.filter(F.col(column).isNotNull())
            .groupBy("module_id", column)
            .agg(F.min(place).alias("first"))
        )
        modules = values.groupBy("module_id").agg(
            F.sort_array(F.collect_list(F.struct(column, "first"))).alias("seen")
        )
        for row in modules.filter(F.size("seen") > 1).orderBy("module_id").collect():
            first = min(row["seen"], key=lambda item: tuple(item["first"])[:2])["first"]
            seen = ", ".join(
                f"{item[column]} ({item['first']['source_file']} row {item['first']['source_row']})"
                for item in row["seen"]
            )
            log.add(
                Problem(
                    "inconsistent_module",
                    f"{where(column, first['source_file'])}: module {row['module_id']} has "
                    f"more than one {column}: {seen}; give each module one {column}",
                    file=first["source_file"],
                    column=column,
                )
            )
    return readings


def _duplicates(groups: list) -> Iterator[Problem]:
    for group in groups:
        places = [item["place"] for item in group["all"]]
        first = places[0]
        for place in places[1:]:
            file, row = place["source_file"], int(place["source_row"])
            moment = np.datetime64(round(group["timestamp_s"] * 1e6), "us")
            yield Problem(
                "duplicate_reading",
                f"{where('timestamp', file, row)}: {group['module_id']} at "
                f"{np.datetime_as_string(moment, unit='ms')}Z is already in "
                f"{first['source_file']} row {first['source_row']} with other values; keep one "
                "reading per module and moment (do two files overlap in time?)",
                file=file,
                row=row,
                column="timestamp",
            )


def module_spans(readings: DataFrame) -> pd.DataFrame:
    """Each module's first and last reading (module_id, timestamp_s; two rows a module):
    all that read_events needs of the telemetry to check events against it."""
    from pyspark.sql import functions as F

    spans = readings.groupBy("module_id").agg(
        F.min("timestamp_s").alias("first"), F.max("timestamp_s").alias("last")
    )
    frame = spans.toPandas()
    return pd.DataFrame(
        {
            "module_id": pd.concat([frame["module_id"], frame["module_id"]], ignore_index=True),
            "timestamp_s": pd.concat([frame["first"], frame["last"]], ignore_index=True),
        }
    )
