"""The backtest report: how the scores would have warned of the known incidents.

The readings are labelled from the events with `label_readings` and judged by training's
own `evaluate` at the run's threshold, so a backtest on a site's files and a training
run's test split are measured the same way: events warned, lead times, false-alarm
episodes per healthy module-hour. Each event's own first warning is listed too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.data.labels import label_readings
from src.scoring.batch import KEY_COLUMNS
from src.training.evaluate import LEAD_TIME_LOOKBACK_S, USEFUL_LEAD_MIN, evaluate

REPORT_SUFFIX = ".report.json"


def report_path(scores_path: str | Path) -> Path:
    """Where the report of a scores file goes: `<out>.report.json` beside it."""
    path = Path(scores_path)
    return path.with_name(path.name + REPORT_SUFFIX)


def backtest_report(scores: pd.DataFrame, events: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Training's metrics of the scores against the events, and each event's warning.

    scores: score_telemetry's frame (sorted by module and time, as evaluate's false-alarm
    count needs); events: read_events' frame.
    """
    labelled = label_readings(scores.loc[:, list(KEY_COLUMNS)], events)
    probabilities = scores["hazard_probability"].to_numpy(dtype=np.float64)
    metrics = evaluate(labelled, probabilities, threshold)
    flagged = probabilities >= threshold
    return {
        "threshold": threshold,
        "readings": len(scores),
        "modules": int(scores["module_id"].nunique()),
        "hazardous_readings": int(labelled["hazardous"].sum()),
        "flagged_readings": int(flagged.sum()),
        "metrics": metrics,
        "events": _event_warnings(labelled, flagged),
    }


def _event_warnings(labelled: pd.DataFrame, flagged: np.ndarray) -> list[dict[str, Any]]:
    """Each event's first alarm in the LEAD_TIME_LOOKBACK_S before onset (evaluate's rule)."""
    rows = []
    frame = labelled.assign(flagged=flagged)
    for event_id, event in frame[frame["event_id"] != ""].groupby("event_id", sort=True):
        onset = float(event["onset_s"].iloc[0])
        times = event["timestamp_s"].to_numpy()
        warned = times[
            (times <= onset) & (times >= onset - LEAD_TIME_LOOKBACK_S) & event["flagged"]
        ]
        rows.append(
            {
                "event_id": str(event_id),
                "module_id": str(event["module_id"].iloc[0]),
                "fault_type": str(event["fault_type"].iloc[0]),
                "onset_s": onset,
                "warned": bool(warned.size),
                "lead_time_min": (onset - float(warned.min())) / 60.0 if warned.size else None,
            }
        )
    return rows


def write_report(report: dict[str, Any], path: str | Path) -> None:
    """The report as JSON; NaN (a metric with nothing to measure) becomes null."""
    Path(path).write_text(json.dumps(_finite(report), indent=2) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def headline(report: dict[str, Any]) -> str:
    """The numbers an operator reads first, on one line."""
    metrics = report["metrics"]
    parts = []
    if "events" in metrics:
        events = int(metrics["events"])
        warned = round(metrics["events_warned_fraction"] * events)
        parts.append(f"events warned {warned}/{events}")
        for minutes in USEFUL_LEAD_MIN:
            key = f"events_warned_{minutes:g}min_fraction"
            if key in metrics:
                parts.append(f">= {minutes:g} min ahead {metrics[key]:.0%}")
        median = metrics.get("lead_time_min_median", float("nan"))
        parts.append(f"median lead {median:.1f} min" if math.isfinite(median) else "no lead time")
    else:
        parts.append("no event has readings")
    if "false_alarms_per_module_hour" in metrics:
        parts.append(
            f"false alarms {metrics['false_alarms_per_module_hour']:.3f} per healthy "
            f"module-hour ({metrics['healthy_module_hours']:.1f} h)"
        )
    else:
        parts.append("no healthy module")
    return "; ".join(parts)
