"""What an early warning is judged on: ranking, the alarm threshold, lead time, false alarms."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

LEAD_TIME_LOOKBACK_S = 1800.0
"""Alarms up to 30 minutes before onset count as warnings of that event."""

USEFUL_LEAD_MIN = (5.0, 10.0)
"""Lead times reported as shares of events warned at least this many minutes ahead: 5 is
what GB 38031 asks of an EV battery's thermal-event warning."""


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, target_recall: float) -> float:
    """The highest threshold that still flags at least target_recall of hazardous readings."""
    _precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    # recall[i] is the recall at thresholds[i]; the final point has no threshold.
    reaching = np.nonzero(recall[:-1] >= target_recall)[0]
    if reaching.size == 0:
        return float(thresholds[0])
    return float(thresholds[reaching[-1]])


def evaluate(frame: pd.DataFrame, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Reading-level and event-level metrics of one split.

    frame holds the simulator's columns (module_id, timestamp_s, fault_type, event_id,
    onset_s, hazardous) for the same rows as probabilities.
    """
    labels = frame["hazardous"].to_numpy()
    flagged = probabilities >= threshold
    true_positives = int(np.sum(flagged & (labels == 1)))
    metrics: dict[str, float] = {
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "precision": true_positives / max(int(flagged.sum()), 1),
        "recall": true_positives / max(int(labels.sum()), 1),
        "hazardous_fraction": float(labels.mean()),
        "rows": float(len(labels)),
    }
    metrics.update(_lead_times(frame, flagged))
    metrics.update(_false_alarms(frame, flagged))
    return metrics


def _lead_times(frame: pd.DataFrame, flagged: np.ndarray) -> dict[str, float]:
    """Minutes before onset at which each fault event is first flagged."""
    faulty = frame.assign(flagged=flagged)[frame["event_id"] != ""]
    lead_minutes: list[float] = []
    events = 0
    for _, event in faulty.groupby("event_id", sort=False):
        events += 1
        onset = float(event["onset_s"].iloc[0])
        before = event[
            (event["timestamp_s"] <= onset)
            & (event["timestamp_s"] >= onset - LEAD_TIME_LOOKBACK_S)
            & event["flagged"]
        ]
        if len(before):
            lead_minutes.append((onset - float(before["timestamp_s"].min())) / 60.0)
    if events == 0:
        return {}
    if not lead_minutes:  # no event warned: no lead time to summarise
        median = p10 = worst = float("nan")
    else:
        leads = np.array(lead_minutes)
        median, p10, worst = (
            float(np.median(leads)),
            float(np.percentile(leads, 10)),
            float(leads.min()),
        )
    warned_ahead = {
        f"events_warned_{minutes:g}min_fraction": sum(lead >= minutes for lead in lead_minutes)
        / events
        for minutes in USEFUL_LEAD_MIN
    }
    return {
        "events": float(events),
        "events_warned_fraction": len(lead_minutes) / events,
        **warned_ahead,
        "lead_time_min_median": median,
        "lead_time_min_p10": p10,
        "lead_time_min_worst": worst,
    }


def _false_alarms(frame: pd.DataFrame, flagged: np.ndarray) -> dict[str, float]:
    """Alarm episodes (not-flagged to flagged) per module-hour on healthy modules."""
    healthy = frame["fault_type"].to_numpy() == "none"
    if not healthy.any():
        return {}
    modules = frame["module_id"].to_numpy()[healthy]
    alarms = flagged[healthy]
    starts = alarms & ~np.r_[False, alarms[:-1] & (modules[1:] == modules[:-1])]
    seconds = frame[healthy].groupby("module_id")["timestamp_s"].agg(lambda t: t.max() - t.min())
    hours = float(seconds.sum()) / 3600.0
    return {
        "false_alarms_per_module_hour": float(starts.sum()) / max(hours, 1e-9),
        "healthy_module_hours": hours,
        "healthy_flagged_fraction": float(alarms.mean()),
    }
