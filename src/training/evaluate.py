"""What an early warning is judged on: how early each fault event is warned, and how often a
healthy module cries wolf, at each alarm level, with the physical guards counted in.

Frames hold the simulator's columns (module_id, timestamp_s, fault_type, event_id,
onset_s, hazardous; optionally true_time_s, lookalike, chemistry, precursor_pattern and
span_s, the event's precursor span). Times are the true ones when the frame has them
(a BMS clock that jumps must not lengthen a lead time). A reading is "flagged" at a level
when the model's probability reaches that level's threshold or a guard of that level
fires, as the service decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from src.data.labels import label_times
from src.data.signals import SAMPLE_PERIOD_S
from src.levels import ALARM, WARNING, Thresholds

LEAD_LOOKBACK_S = 1800.0
"""Without a known precursor span, flags up to 30 minutes before onset count as warnings."""

USEFUL_LEAD_MIN = (5.0, 10.0)
"""Lead times reported as shares of events warned at least this many minutes ahead: 5 is
what GB 38031 asks of an EV battery's thermal-event warning."""

FALSE_ALARM_BUDGET_PER_1000H = 1.0
"""The warning level may cost at most this many false-alarm episodes per 1,000 healthy
module-hours; the alarm level none at all in the validation exposure."""

STANDING_REPEAT_S = 1800.0
"""A flag left standing counts as one more episode for every 30 minutes it stands (it would
be raised again): so a level that is simply always on cannot pass for one false alarm."""

READING_WEIGHT_CAP_S = 60.0
"""A reading stands for the time until the module's next one, at most this long."""

MIN_EXPOSURE_H = 1000.0
"""Validation exposure that "no false alarm" must rest on to mean something."""

THRESHOLD_GRID = np.unique(
    np.concatenate((np.geomspace(1e-4, 0.5, 600), 1 - np.geomspace(0.5, 1e-6, 1400)))
)
"""Candidate thresholds: log-spaced near 0 and near 1, where the choices fall."""


def time_of(frame: pd.DataFrame) -> np.ndarray:
    """The time readings are judged by: the one they are labelled by."""
    return label_times(frame)


def in_time_order(frame: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by (module, true time): episodes follow real time."""
    return np.lexsort((time_of(frame), frame["module_id"].to_numpy()))


@dataclass(frozen=True)
class Exposure:
    """The healthy modules' readings in time order, and their module-hours."""

    rows: np.ndarray
    """Positions in the frame, sorted by module and time."""
    first_of_module: np.ndarray
    seconds: np.ndarray
    """How long each reading stands for: until the module's next, at most a minute."""
    hours: float


def healthy_exposure(frame: pd.DataFrame) -> Exposure:
    order = in_time_order(frame)
    healthy = frame["fault_type"].to_numpy()[order] == "none"
    rows = order[healthy]
    modules = frame["module_id"].to_numpy()[rows]
    first = np.r_[True, modules[1:] != modules[:-1]]
    t = time_of(frame)[rows]
    starts, ends = np.flatnonzero(first), np.r_[np.flatnonzero(first)[1:], rows.size] - 1
    hours = float((t[ends] - t[starts]).sum()) / 3600.0 if rows.size else 0.0
    last = np.r_[first[1:], True]
    seconds = np.where(last, 0.0, np.minimum(np.r_[np.diff(t), 0.0], READING_WEIGHT_CAP_S))
    return Exposure(rows, first, seconds, hours)


def episodes(flagged: np.ndarray, exposure: Exposure) -> float:
    """False-alarm episodes: runs of flagged healthy readings, each counting once and once
    more per STANDING_REPEAT_S it stands."""
    f = flagged[exposure.rows]
    starts = np.sum(f & (exposure.first_of_module | ~np.r_[False, f[:-1]]))
    return float(starts) + float(exposure.seconds[f].sum()) / STANDING_REPEAT_S


def episodes_by_threshold(
    probabilities: np.ndarray, guard: np.ndarray, exposure: Exposure, grid: np.ndarray
) -> np.ndarray:
    """episodes() of (probability >= t or guard) for every t of grid, in one pass.

    A reading starts an episode at threshold t exactly when it is flagged and the one
    before is not, i.e. for t in (p_previous, p_here] (or above p_previous if the guard
    holds here; never if it held on the previous reading)."""
    p, g = probabilities[exposure.rows], guard[exposure.rows]
    first = exposure.first_of_module
    previous_p = np.where(first, -np.inf, np.r_[-np.inf, p[:-1]])
    previous_g = np.where(first, False, np.r_[False, g[:-1]])
    lower = np.where(previous_g, np.inf, previous_p)
    upper = np.where(g, np.inf, p)
    valid = lower < upper
    lower, upper = lower[valid], upper[valid]
    # count of (lower < t) minus count of (upper < t)
    starts = np.searchsorted(np.sort(lower), grid, side="left") - np.searchsorted(
        np.sort(upper), grid, side="left"
    )
    # the time flagged at t: every guard reading, and every other reading with p >= t
    guarded = float(exposure.seconds[g].sum())
    order = np.argsort(p[~g])
    sorted_p, weights = p[~g][order], exposure.seconds[~g][order]
    above = np.r_[np.cumsum(weights[::-1])[::-1], 0.0]  # weight of p[i:] for each i
    flagged_seconds = guarded + above[np.searchsorted(sorted_p, grid, side="left")]
    return starts + flagged_seconds / STANDING_REPEAT_S


@dataclass(frozen=True)
class EventWindows:
    """Each fault event's readings from its warning window's start to onset, time order."""

    event_ids: list[str]
    onsets: np.ndarray
    spans_s: np.ndarray
    rows: list[np.ndarray]


def event_windows(frame: pd.DataFrame) -> EventWindows:
    t = time_of(frame)
    ids, onsets, spans, rows = [], [], [], []
    events = frame["event_id"].to_numpy()
    for event_id in pd.unique(events[events != ""]):
        positions = np.flatnonzero(events == event_id)
        onset = float(frame["onset_s"].to_numpy()[positions[0]])
        span = (
            float(frame["span_s"].to_numpy()[positions[0]]) if "span_s" in frame.columns else np.nan
        )
        window = LEAD_LOOKBACK_S if np.isnan(span) else span
        inside = positions[(t[positions] <= onset) & (t[positions] >= onset - window)]
        ids.append(str(event_id))
        onsets.append(onset)
        spans.append(span)
        rows.append(inside[np.argsort(t[inside], kind="stable")])
    return EventWindows(ids, np.array(onsets), np.array(spans), rows)


def lead_minutes(
    windows: EventWindows,
    t: np.ndarray,
    probabilities: np.ndarray,
    guard: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """Minutes before onset of each event's first flag (NaN: not warned before onset)."""
    leads = np.full(len(windows.event_ids), np.nan)
    for index, rows in enumerate(windows.rows):
        flagged = (probabilities[rows] >= threshold) | guard[rows]
        if flagged.any():
            leads[index] = (windows.onsets[index] - t[rows][np.argmax(flagged)]) / 60.0
    return leads


def leads_by_threshold(
    windows: EventWindows,
    t: np.ndarray,
    probabilities: np.ndarray,
    guard: np.ndarray,
    grid: np.ndarray,
) -> np.ndarray:
    """lead_minutes for every threshold of grid: shape (len(grid), events)."""
    leads = np.full((grid.size, len(windows.event_ids)), np.nan)
    for index, rows in enumerate(windows.rows):
        if rows.size == 0:
            continue
        score = np.where(guard[rows], np.inf, probabilities[rows])
        running = np.maximum.accumulate(score)  # first reading reaching t = first running >= t
        first = np.searchsorted(running, grid, side="left")
        hit = first < rows.size
        leads[hit, index] = (windows.onsets[index] - t[rows][first[hit]]) / 60.0
    return leads


@dataclass(frozen=True)
class LevelChoice:
    thresholds: Thresholds
    exposure_h: float
    curve: pd.DataFrame
    """Per candidate threshold: false alarms per 1,000 h (warning level) and lead times."""


def choose_thresholds(
    frame: pd.DataFrame,
    probabilities: np.ndarray,
    guard_warning: np.ndarray,
    guard_alarm: np.ndarray,
    budget_per_1000h: float = FALSE_ALARM_BUDGET_PER_1000H,
) -> LevelChoice:
    """Warning: the lowest threshold (the earliest alert) within the false-alarm budget on
    these (validation) modules; alarm: the lowest with no false-alarm episode at all."""
    exposure = healthy_exposure(frame)
    hours = max(exposure.hours, 1e-9)
    warn_rate = (
        1000.0
        * episodes_by_threshold(probabilities, guard_warning, exposure, THRESHOLD_GRID)
        / hours
    )
    alarm_count = episodes_by_threshold(probabilities, guard_alarm, exposure, THRESHOLD_GRID)
    within = np.flatnonzero(warn_rate <= budget_per_1000h)
    warning = float(THRESHOLD_GRID[within[0]]) if within.size else float(THRESHOLD_GRID[-1])
    # "None at all" allows the standing time of the guards' own flags, if they raise any.
    silent = np.flatnonzero(alarm_count <= alarm_count.min() + 1e-9)
    alarm = float(THRESHOLD_GRID[silent[0]])
    windows = event_windows(frame)
    leads = leads_by_threshold(
        windows, time_of(frame), probabilities, guard_warning, THRESHOLD_GRID
    )
    with np.errstate(invalid="ignore"):
        curve = pd.DataFrame(
            {
                "threshold": THRESHOLD_GRID,
                "false_alarms_per_1000h": warn_rate,
                "events_warned_5min_fraction": np.mean(np.nan_to_num(leads, nan=-1) >= 5.0, axis=1)
                if leads.shape[1]
                else np.nan,
                "lead_time_min_median": np.nanmedian(np.where(np.isnan(leads), 0.0, leads), axis=1)
                if leads.shape[1]
                else np.nan,
            }
        )
    return LevelChoice(
        Thresholds(warning=warning, alarm=max(alarm, warning)), exposure.hours, curve
    )


def event_metrics(leads: np.ndarray, spans_s: np.ndarray) -> dict[str, float]:
    """Shares of events warned >= 5 and >= 10 min ahead, median and worst lead (unwarned
    events count as 0 in the median and the worst), also for events with spans >= 10 min."""
    metrics: dict[str, float] = {"events": float(leads.size)}
    if leads.size == 0:
        return metrics
    as_zero = np.where(np.isnan(leads), 0.0, leads)
    metrics["events_warned_fraction"] = float(np.mean(~np.isnan(leads)))
    for minutes in USEFUL_LEAD_MIN:
        metrics[f"events_warned_{minutes:g}min_fraction"] = float(np.mean(as_zero >= minutes))
    metrics["lead_time_min_median"] = float(np.median(as_zero))
    metrics["lead_time_min_worst"] = float(as_zero.min())
    long = spans_s >= 600.0
    if long.any():
        metrics["long_span_events"] = float(long.sum())
        for minutes in USEFUL_LEAD_MIN:
            metrics[f"long_span_warned_{minutes:g}min_fraction"] = float(
                np.mean(as_zero[long] >= minutes)
            )
        metrics["long_span_lead_time_min_median"] = float(np.median(as_zero[long]))
    return metrics


def false_alarm_metrics(frame: pd.DataFrame, flagged: np.ndarray, prefix: str) -> dict[str, float]:
    """Episodes per 1,000 healthy module-hours, overall and per look-alike kind (episodes
    that start during the look-alike, per hour spent in it)."""
    exposure = healthy_exposure(frame)
    metrics = {
        f"{prefix}_false_alarms_per_1000h": 1000.0
        * episodes(flagged, exposure)
        / max(exposure.hours, 1e-9),
        f"{prefix}_false_alarm_episodes": float(episodes(flagged, exposure)),
    }
    if "lookalike" not in frame.columns:
        return metrics
    f = flagged[exposure.rows]
    starts = f & (exposure.first_of_module | ~np.r_[False, f[:-1]])
    kinds = frame["lookalike"].to_numpy()[exposure.rows]
    for kind in sorted({k for label in set(kinds) if label for k in label.split("+")}):
        during = np.array([kind in label.split("+") for label in kinds])
        hours = during.sum() * SAMPLE_PERIOD_S / 3600.0
        metrics[f"{prefix}_false_alarms_per_1000h_{kind}"] = (
            1000.0 * float(np.sum(starts & during)) / max(hours, 1e-9)
        )
    return metrics


_GROUP_METRICS = (
    "events",
    "events_warned_5min_fraction",
    "events_warned_10min_fraction",
    "lead_time_min_median",
    "lead_time_min_worst",
)


def evaluate(
    frame: pd.DataFrame,
    probabilities: np.ndarray,
    thresholds: Thresholds,
    guard_levels: np.ndarray | None = None,
    by: tuple[str, ...] = ("fault_type", "chemistry", "precursor_pattern"),
) -> dict[str, float]:
    """Every metric of one set: ranking, events at each level (overall and by fault kind,
    chemistry and pattern), false alarms at each level (overall and per look-alike)."""
    guards = np.zeros(len(frame), dtype=np.int8) if guard_levels is None else guard_levels
    labels = frame["hazardous"].to_numpy()
    metrics: dict[str, float] = {
        "rows": float(len(labels)),
        "hazardous_fraction": float(labels.mean()) if labels.size else 0.0,
    }
    if 0 < labels.sum() < labels.size:
        metrics["pr_auc"] = float(average_precision_score(labels, probabilities))
    t = time_of(frame)
    windows = event_windows(frame)
    for name, threshold, guard_level in (
        ("warning", thresholds.warning, WARNING),
        ("alarm", thresholds.alarm, ALARM),
    ):
        guard = guards >= guard_level
        flagged = (probabilities >= threshold) | guard
        leads = lead_minutes(windows, t, probabilities, guard, threshold)
        metrics.update({f"{name}_{k}": v for k, v in event_metrics(leads, windows.spans_s).items()})
        metrics.update(false_alarm_metrics(frame, flagged, name))
        first_rows = {eid: rows for eid, rows in zip(windows.event_ids, windows.rows, strict=True)}
        for column in by:
            if column not in frame.columns or not windows.event_ids:
                continue
            values = frame[column].to_numpy()
            of_event = np.array(
                [values[rows[0]] if rows.size else "" for rows in first_rows.values()], dtype=object
            )
            for value in sorted(set(of_event) - {""}):
                chosen = of_event == value
                part = event_metrics(leads[chosen], windows.spans_s[chosen])
                for key in _GROUP_METRICS:
                    if key in part:
                        metrics[f"{name}_{column}_{value}_{key}"] = part[key]
    return metrics
