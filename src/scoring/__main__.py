"""`python -m src.scoring`: score every reading of telemetry files with one training run.

    python -m src.scoring --telemetry site/telemetry --events site/events.csv \\
        --run-id RUN --out scores.parquet [--engine spark --spark-master local[2]]

Writes one row per reading (module_id, timestamp_s, hazard_probability, level, hazardous,
reasons, missing, the history the features used, model_version) to --out (.parquet or
.csv) and, with --events, `<out>.report.json`: training's lead-time and false-alarm
metrics at the run's warning and alarm levels. Progress goes to standard error; the paths
written and then a one-line summary are the last lines of standard output.

Exit status: 0 done; 2 the files or arguments cannot be used (every problem is printed);
3 the run cannot be loaded; 4 Spark cannot start (what to install is printed).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from src.data.telemetry_files import TelemetryValidationError, read_events, read_telemetry
from src.errors import ModelLoadError
from src.levels import Thresholds
from src.scoring.batch import (
    DEFAULT_CHUNK_READINGS,
    load_scoring_service,
    score_telemetry,
    write_scores,
)
from src.scoring.report import backtest_report, headline, report_path, write_report
from src.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("src.scoring")

EXIT_BAD_INPUT = 2
EXIT_MODEL = 3
EXIT_SPARK = 4
SUFFIXES = (".parquet", ".pq", ".csv")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.scoring", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--telemetry", type=Path, required=True, help="a CSV/Parquet file or a folder of them"
    )
    parser.add_argument(
        "--events", type=Path, help="incident log (CSV/Parquet): adds <out>.report.json"
    )
    parser.add_argument("--run-id", required=True, help="the MLflow run to score with")
    store = parser.add_mutually_exclusive_group()
    store.add_argument(
        "--mlruns-dir", type=Path, default=Path("mlruns"), help="MLflow file store (./mlruns)"
    )
    store.add_argument("--tracking-uri", help="the store as a file:// URI, instead")
    parser.add_argument(
        "--out", type=Path, required=True, help="scores file: .parquet (or .pq) or .csv"
    )
    parser.add_argument("--engine", choices=("local", "spark"), default="local")
    parser.add_argument(
        "--spark-master",
        help="e.g. local[2]; default: the master spark-submit was given, else local[*]",
    )
    parser.add_argument(
        "--spark-input",
        choices=("driver", "executors"),
        default="driver",
        help="who reads and validates the files on Spark: the driver (files that fit its "
        "memory), or one executor task per file (a shared file system; docs/own-data.md)",
    )
    parser.add_argument(
        "--chunk-readings",
        type=int,
        default=DEFAULT_CHUNK_READINGS,
        help=f"readings per call on the local engine (whole modules; {DEFAULT_CHUNK_READINGS:,})",
    )
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in SUFFIXES:
        parser.error(f"--out {args.out}: write the scores to a .parquet or .csv file")
    if args.chunk_readings < 1:
        parser.error("--chunk-readings must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    tracking_uri = args.tracking_uri or str(args.mlruns_dir)
    try:
        settings = load_settings(BEST_MLFLOW_RUN_ID=args.run_id, MLFLOW_TRACKING_URI=tracking_uri)
    except SettingsError as error:
        return _fail(EXIT_BAD_INPUT, str(error))
    try:
        if args.engine == "spark":
            scored = _score_spark(args, settings)
        else:
            scored = _score_local(args, settings)
    except TelemetryValidationError as error:
        return _fail(EXIT_BAD_INPUT, str(error))
    except ModelLoadError as error:
        return _fail(EXIT_MODEL, f"run {args.run_id} cannot be used: {error.message}")
    except _SparkUnavailable as error:
        return _fail(EXIT_SPARK, str(error))
    scores = scored.scores

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_scores(scores, args.out)
    written = [args.out]
    summary = _summary(scored, args.run_id, args.engine)
    if scored.events is not None:
        report = backtest_report(scores, scored.events, scored.thresholds)
        report.update(_sources(args, scored))
        write_report(report, report_path(args.out))
        written.append(report_path(args.out))
        summary += "; " + headline(report)
    for path in written:
        print(path)
    print(summary)
    return 0


class _SparkUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class _Scored:
    scores: pd.DataFrame
    events: pd.DataFrame | None
    thresholds: Thresholds
    setup_s: float
    """Loading the model; on Spark also starting the session, broadcasting the model and,
    with --spark-input executors, reading the files."""
    score_s: float


def _read(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The telemetry and events, validated here; raises TelemetryValidationError."""
    telemetry = read_telemetry(args.telemetry)
    events = read_events(args.events, telemetry=telemetry) if args.events else None
    return telemetry, events


def _score_local(args: argparse.Namespace, settings: Settings) -> _Scored:
    telemetry, events = _read(args)
    started = time.perf_counter()
    service = load_scoring_service(settings)
    loaded = time.perf_counter()
    with tqdm(
        total=len(telemetry), unit=" readings", unit_scale=True, desc="scoring", file=sys.stderr
    ) as bar:

        def progress(readings: int, modules: int) -> None:
            bar.update(readings - bar.n)
            bar.set_postfix(modules=modules, refresh=False)

        scores = score_telemetry(
            service, telemetry, chunk_readings=args.chunk_readings, progress=progress
        )
    done = time.perf_counter()
    return _Scored(scores, events, service.model.thresholds, loaded - started, done - loaded)


def _score_spark(args: argparse.Namespace, settings: Settings) -> _Scored:
    # Imported here: pyspark is a dev/batch extra, and the local engine must not need it.
    from src.scoring.spark import SparkScorer, SparkUnavailableError, spark_session
    from src.scoring.spark_files import module_spans, read_telemetry_spark

    on_driver = args.spark_input == "driver"
    if on_driver:  # validated before Spark starts: a bad file costs no JVM
        telemetry, events = _read(args)
    started = time.perf_counter()
    try:
        spark = spark_session(args.spark_master)
    except SparkUnavailableError as error:
        raise _SparkUnavailable(str(error)) from None
    if not on_driver:
        readings = read_telemetry_spark(spark, args.telemetry)
        spans = module_spans(readings) if args.events else None
        events = read_events(args.events, telemetry=spans) if args.events else None
    scorer = SparkScorer(spark, settings)
    ready = time.perf_counter()
    try:
        # Spark reports its own progress (stages and tasks) on standard error.
        logger.info(
            "scoring on Spark (%s), input read on the %s",
            spark.sparkContext.master,
            "driver" if on_driver else "executors",
        )
        if on_driver:
            readings = scorer.dataframe(telemetry)
        scores = scorer.collect(scorer.score(readings))
    finally:
        scorer.close()
    done = time.perf_counter()
    return _Scored(scores, events, scorer.thresholds, ready - started, done - ready)


def _summary(scored: _Scored, run_id: str, engine: str) -> str:
    scores = scored.scores
    rate = len(scores) / scored.score_s if scored.score_s > 0 else float("inf")
    warned = float(scores["level"].isin(["warning", "alarm"]).mean()) if len(scores) else 0.0
    alarmed = float(scores["hazardous"].mean()) if len(scores) else 0.0
    thresholds = scored.thresholds
    return (
        f"scored {len(scores):,} readings of {scores['module_id'].nunique():,} modules with run "
        f"{run_id} on {engine} in {scored.score_s:.1f} s ({rate:,.0f} readings/s, after "
        f"{scored.setup_s:.1f} s of set-up); thresholds warning {thresholds.warning:.4g}, "
        f"alarm {thresholds.alarm:.4g}; {warned:.2%} of readings at warning or above, "
        f"{alarmed:.2%} at alarm"
    )


def _sources(args: argparse.Namespace, scored: _Scored) -> dict[str, Any]:
    return {
        "run_id": args.run_id,
        "telemetry": str(args.telemetry),
        "events_file": str(args.events),
        "scores": str(args.out),
        "engine": args.engine,
        "setup_seconds": round(scored.setup_s, 3),
        "scoring_seconds": round(scored.score_s, 3),
    }


def _fail(status: int, message: str) -> int:
    sys.stderr.write(message.rstrip("\n") + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
