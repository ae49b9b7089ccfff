"""What explanations cost: one /predict with explain on and off, in one process (no HTTP).

    .venv/bin/python -m bench.explain_cost [--seconds 2] [--rounds 3] [--run-id RUN]
        [--mlruns-dir bench/results/mlruns]

The benchmark's two request shapes (bench/workload.py: 1 reading; 1000 readings of 20
modules, four of them in the minutes before a thermal runaway), each sent through Flask's
test client to two apps of the same run: one with explanations off (HVS_EXPLAIN_TOP=0,
nothing computed, as before explanations existed) and one with the default (3: readings
at warning or alarm explained and audit-logged), the latter also with `"explain": true`.
Module history is off, so every repetition scores the same request alone.

Median CPU time of this process per request (one thread, so other processes on a shared
machine stretch the run but not the numbers), the cases of one size taken in turn request
by request, so a busy spell hits all of them alike; requests/s is one worker's ceiling,
1 / that time.
The ratios are what to compare across machines; the log lines the audit trail writes go
to /dev/null here (their formatting is counted, the terminal is not).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger("bench.explain_cost")


@dataclass(frozen=True)
class Case:
    title: str
    app: str
    """`off` (HVS_EXPLAIN_TOP=0) or `default` (3)."""
    body: bytes
    baseline: str | None
    """The case this one is compared with (its ratio), or None for a baseline."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.inprocess import DEFAULT_MLRUNS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="budget per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mlruns-dir", type=Path, default=DEFAULT_MLRUNS)
    parser.add_argument("--run-id", help="measure this run instead of the newest default one")
    return parser.parse_args(argv)


def cases() -> list[Case]:
    from bench import workload

    shapes = {shape.name: shape for shape in workload.shapes()}
    one, batch = shapes["one"].ours_body, shapes["batch"].ours_body

    def explained(body: bytes) -> bytes:
        return orjson.dumps({**orjson.loads(body), "explain": True})

    one_off, batch_off = "1 reading, explanations off", "1000 readings, explanations off"
    return [
        Case(one_off, "off", one, None),
        Case("1 reading, default (normal: nothing explained)", "default", one, one_off),
        Case('1 reading, "explain": true', "default", explained(one), one_off),
        Case(batch_off, "off", batch, None),
        Case(
            "1000 readings, default (flagged ones explained, logged)", "default", batch, batch_off
        ),
        Case('1000 readings, "explain": true', "default", explained(batch), batch_off),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("[explain] %(message)s"))
    logger.addHandler(progress)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the service's own lines, audit trail included: /dev/null
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # metrics in memory: not what differs

    from bench import inprocess
    from bench.load import self_cpu_seconds
    from bench.servers import machine_cpu_seconds
    from src.api import create_app
    from src.settings import Settings

    mlruns = args.mlruns_dir.expanduser().resolve()
    run_id = args.run_id or inprocess.default_run(mlruns)
    all_cases = cases()
    # The service logs to the stdout it finds when its logging is first set up; the audit
    # lines go to /dev/null, the report to the real stdout.
    report_stream, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115
    try:
        clients = {}
        for name, top in (("off", 0), ("default", 3)):
            settings = Settings(
                BEST_MLFLOW_RUN_ID=run_id,
                MLFLOW_TRACKING_URI=mlruns.as_uri(),
                HVS_LOG_FORMAT="json",
                HVS_HISTORY=False,
                HVS_EXPLAIN_TOP=top,
            )
            clients[name] = create_app(settings, load="now").test_client()
        flagged = check(clients, all_cases)
        gc.freeze()  # as each gunicorn worker does once its app is loaded (design.md)
        samples: dict[str, list[float]] = {case.title: [] for case in all_cases}
        busy_before, _ = machine_cpu_seconds()
        self_before, started = self_cpu_seconds(), time.perf_counter()
        groups: dict[str, list[Case]] = {}
        for case in all_cases:
            groups.setdefault(case.baseline or case.title, []).append(case)
        for round_number in range(args.rounds):
            logger.info(f"round {round_number + 1} of {args.rounds}")
            for group in groups.values():
                for title, times in time_group(clients, group, args.seconds).items():
                    samples[title].extend(times)
        others = machine_cpu_seconds()[0] - busy_before - (self_cpu_seconds() - self_before)
        others_cores = max(others, 0.0) / (time.perf_counter() - started)
    finally:
        sys.stdout = report_stream
    medians = {title: statistics.median(values) for title, values in samples.items()}
    report_stream.write(table(all_cases, medians, {t: len(v) for t, v in samples.items()}))
    report_stream.write(
        f"\nThe 1000-reading request has {flagged} readings at warning or alarm. "
        f"Other processes used {others_cores:.2f} of {os.cpu_count()} cores meanwhile"
        + (": rerun on a quiet machine.\n" if others_cores >= 0.2 else ".\n")
    )
    return 0


def check(clients: dict, all_cases: list[Case]) -> int:
    """Each case answers 200 with explanations where expected; the 1000-reading request's
    count of readings at warning or alarm."""
    flagged = 0
    for case in all_cases:
        response = clients[case.app].post(
            "/predict", data=case.body, content_type="application/json"
        )
        if response.status_code != 200:
            raise RuntimeError(f"{case.title}: {response.status_code} {response.text[:300]}")
        predictions = response.get_json()["predictions"]
        at_risk = [p["level"] in ("warning", "alarm") for p in predictions]
        explained = [p["explanation"] is not None for p in predictions]
        asked = b'"explain":true' in case.body
        expected = [False] * len(predictions) if case.app == "off" else at_risk
        if asked and case.app == "default":
            expected = [True] * len(predictions)
        if explained != expected:
            raise RuntimeError(f"{case.title}: explanations not where expected")
        if len(predictions) > 1:
            flagged = sum(at_risk)
    return flagged


def time_group(clients: dict, group: list[Case], seconds: float) -> dict[str, list[float]]:
    """CPU seconds of each request, the group's cases taken in turn request by request
    (in blocks of one case each, a block's position alone moved its median by 10 %), each
    timed request right after an untimed one of the same case: after a 1000-reading
    explanation, the next request of another case took twice its time."""
    times: dict[str, list[float]] = {case.title: [] for case in group}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times[group[0].title]) < 5:
        for case in group:
            client = clients[case.app]
            # Untimed: the same request once first, so the timed one does not pay for the
            # previous case's garbage (collected now) or its freed memory (mapped again).
            client.post("/predict", data=case.body, content_type="application/json")
            gc.collect()
            started = time.process_time()
            client.post("/predict", data=case.body, content_type="application/json")
            times[case.title].append(time.process_time() - started)
    return times


def table(all_cases: list[Case], medians: dict[str, float], counts: dict[str, int]) -> str:
    lines = [
        "Explanations' cost per /predict (in process, Flask test client, median CPU time)",
        "",
        "| request | ms | requests/s per worker | against explanations off | repetitions |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in all_cases:
        seconds = medians[case.title]
        ratio = "1" if case.baseline is None else f"{seconds / medians[case.baseline]:.2f} ×"
        lines.append(
            f"| {case.title} | {1e3 * seconds:,.2f} | {1 / seconds:,.0f} | {ratio} "
            f"| {counts[case.title]} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
