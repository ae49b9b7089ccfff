"""What drift tracking costs per /predict call, in one process: the service's own
`predict` with the drift window on (HVS_DRIFT_WINDOW_READINGS) and off, CPU time per
call for 1, 10 and 100 readings, and the drift stage alone (observe, plus the gauge
writes once a second), with prometheus_client in multiprocess mode as under gunicorn.

    .venv/bin/python -m bench.drift_cost --run-id RUN --mlruns-dir mlruns
    .venv/bin/python -m bench.drift_cost --small     # trains the small model into a temp store
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from src.data.signals import SIGNALS
from src.readings import ReadingBatch

SIZES = (1, 10, 100)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlruns-dir", type=Path, default=Path("mlruns"))
    parser.add_argument("--run-id")
    parser.add_argument("--small", action="store_true", help="train the small model first")
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per case")
    parser.add_argument("--window", type=int, default=1000, help="HVS_DRIFT_WINDOW_READINGS")
    args = parser.parse_args(argv)
    if not args.small and not args.run_id:
        parser.error("give --run-id (and --mlruns-dir), or --small")
    return args


def batch_of(size: int, start_s: float) -> ReadingBatch:
    signals = np.array([[s.reference for s in SIGNALS]] * size)
    signals *= 1 + 0.01 * np.random.default_rng(size).standard_normal(signals.shape)
    modules = [f"R01-M{i % 40:02d}" for i in range(size)]
    return ReadingBatch(modules, start_s + 10.0 * np.arange(size), signals)


def cpu_per_call(service, size: int, seconds: float) -> tuple[float, float, float]:
    """Median CPU seconds of predict(), and the median and mean of its drift stage (the
    mean carries the flush every 64 readings and the gauge writes once a second)."""
    totals, drift = [], []
    start_s = 1_767_225_600.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(totals) < 50:
        batch = batch_of(size, start_s)
        start_s += 10.0 * size
        timings: dict[str, float] = {}
        t0 = time.process_time()
        service.predict(batch, timings)
        totals.append(time.process_time() - t0)
        drift.append(timings.get("drift", 0.0))
    return statistics.median(totals), statistics.median(drift), statistics.fmean(drift)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hvs-drift-cost-"))
    try:
        return measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> int:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    (work / "metrics").mkdir()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from prometheus_client import CollectorRegistry

    from src.services.metrics import PredictionMetrics
    from src.services.prediction_service import PredictionService
    from src.settings import Settings

    if args.small:
        from src.training.config import small_config
        from src.training.tracking import log_run
        from src.training.train import train

        config = replace(small_config(), holdout=False)
        mlruns = work / "mlruns"
        run_id = log_run(train(config), config, tracking_uri=mlruns.as_uri())
    else:
        mlruns, run_id = args.mlruns_dir.resolve(), args.run_id
    rows = []
    for window in (args.window, 0):
        settings = Settings(
            BEST_MLFLOW_RUN_ID=run_id,
            MLFLOW_TRACKING_URI=mlruns.as_uri(),
            HVS_HISTORY="off",
            HVS_DRIFT_WINDOW_READINGS=window,
        )
        service = PredictionService(settings, PredictionMetrics(CollectorRegistry()))
        service.load()
        for size in SIZES:
            rows.append((window, size, *cpu_per_call(service, size, args.seconds)))
    print(f"run {run_id}, window {args.window} readings, CPU time per predict() call (median)")
    print("| readings | drift on | drift off | drift stage, median | mean | mean / call |")
    print("|---:|---:|---:|---:|---:|---:|")
    by = {(w, s): rest for w, s, *rest in rows}
    for size in SIZES:
        on, stage, stage_mean = by[(args.window, size)]
        off = by[(0, size)][0]
        print(
            f"| {size} | {on * 1e6:.0f} µs | {off * 1e6:.0f} µs | {stage * 1e6:.0f} µs "
            f"| {stage_mean * 1e6:.0f} µs | {stage_mean / on:.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
