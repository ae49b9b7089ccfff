"""The backtest report: how the scores would have warned of the known incidents.

The readings are labelled from the events with `label_readings` and judged by training's
own `evaluate` at the run's two levels, so a backtest on a site's files and a training
run's test split are measured the same way: events warned (and how early) at the warning
and at the alarm level, false-alarm episodes per 1,000 healthy module-hours. A reading
counts as flagged at a level when the service answered that level or a higher one (its
model, guards and all); `unknown` flags nothing. Each event's own first warning and first
alarm are listed too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.data.labels import label_readings
from src.levels import ALARM, LEVEL_NAMES, NORMAL, UNKNOWN, WARNING, Thresholds
from src.scoring.batch import KEY_COLUMNS
from src.training.evaluate import (
    USEFUL_LEAD_MIN,
    evaluate,
    event_windows,
    healthy_exposure,
    lead_minutes,
    time_of,
)

REPORT_SUFFIX = ".report.json"
LEVELS = (("warning", WARNING), ("alarm", ALARM))


def report_path(scores_path: str | Path) -> Path:
    """Where the report of a scores file goes: `<out>.report.json` beside it."""
    path = Path(scores_path)
    return path.with_name(path.name + REPORT_SUFFIX)


def flag_levels(levels: pd.Series) -> np.ndarray:
    """The scores' level names as numbers evaluate counts flags by (unknown: normal)."""
    codes = {name: code for code, name in enumerate(LEVEL_NAMES)}
    numbers = levels.map(codes).to_numpy(dtype=np.int8)
    return np.where(numbers == UNKNOWN, NORMAL, numbers).astype(np.int8)


def backtest_report(
    scores: pd.DataFrame, events: pd.DataFrame, thresholds: Thresholds
) -> dict[str, Any]:
    """Training's metrics of the scores against the events, and each event's warnings.

    scores: score_telemetry's frame; events: read_events' frame; thresholds: the run's.
    """
    labelled = label_readings(scores.loc[:, list(KEY_COLUMNS)], events)
    probabilities = scores["hazard_probability"].to_numpy(dtype=np.float64)
    flags = flag_levels(scores["level"])
    # The service's levels already hold the model's thresholds and the guards: passed as
    # guard levels, a reading is flagged at a level exactly when its answer reached it.
    metrics = evaluate(labelled, probabilities, thresholds, flags, by=("fault_type",))
    metrics["healthy_module_hours"] = healthy_exposure(labelled).hours
    return {
        "thresholds": {"warning": thresholds.warning, "alarm": thresholds.alarm},
        "readings": len(scores),
        "modules": int(scores["module_id"].nunique()),
        "hazardous_readings": int(labelled["hazardous"].sum()),
        "flagged_readings": {name: int((flags >= level).sum()) for name, level in LEVELS},
        "metrics": metrics,
        "events": _event_warnings(labelled, flags),
    }


def _event_warnings(labelled: pd.DataFrame, flags: np.ndarray) -> list[dict[str, Any]]:
    """Each event's first flag at each level before onset (evaluate's window and rule)."""
    windows = event_windows(labelled)
    t = time_of(labelled)
    never = np.zeros(len(labelled))
    leads = {
        name: lead_minutes(windows, t, never, flags >= level, math.inf) for name, level in LEVELS
    }
    rows = []
    for index, event_id in enumerate(windows.event_ids):
        first = np.flatnonzero(labelled["event_id"].to_numpy() == event_id)[0]
        row: dict[str, Any] = {
            "event_id": event_id,
            "module_id": str(labelled["module_id"].iat[first]),
            "fault_type": str(labelled["fault_type"].iat[first]),
            "onset_s": float(windows.onsets[index]),
        }
        for name, _ in LEVELS:
            lead = leads[name][index]
            row[f"{name}_lead_time_min"] = None if np.isnan(lead) else float(lead)
        rows.append(row)
    return sorted(rows, key=lambda row: row["event_id"])


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
    for name, _ in LEVELS:
        events = int(metrics.get(f"{name}_events", 0))
        if not events:
            parts.append(f"{name}: no event has readings")
            continue
        warned = round(metrics[f"{name}_events_warned_fraction"] * events)
        text = f"{name}: events warned {warned}/{events}"
        for minutes in USEFUL_LEAD_MIN:
            key = f"{name}_events_warned_{minutes:g}min_fraction"
            if key in metrics:
                text += f", >= {minutes:g} min ahead {metrics[key]:.0%}"
        median = metrics.get(f"{name}_lead_time_min_median", math.nan)
        text += f", median lead {median:.1f} min" if math.isfinite(median) else ", no lead time"
        parts.append(text)
    hours = metrics["healthy_module_hours"]
    if hours > 0:
        parts.append(
            "false alarms per 1,000 healthy module-hours: "
            f"warning {metrics['warning_false_alarms_per_1000h']:.2f}, "
            f"alarm {metrics['alarm_false_alarms_per_1000h']:.2f} ({hours:,.1f} h)"
        )
    else:
        parts.append("no healthy module")
    return "; ".join(parts)
