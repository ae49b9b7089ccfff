"""The training label of every reading, from the readings and a list of fault events.

One function, `label_readings`, used for operators' files and written so that the simulator
can call it too: a reading is hazardous when thermal-runaway onset follows within
`HAZARD_HORIZON_S` (600 s; training passes its config's `label_horizon_s`) or has already
begun.

A reading's time is its `true_time_s` where the frame has one (only the simulator knows
it: a BMS clock that jumps must not move a label), else its `timestamp_s`, which is all an
operator's files hold (`label_times`; training and evaluation use the same rule).

A module with several events: each reading is labelled by the **next** onset at or after
it; once a module's last onset has passed, by that last one. So a reading between two
events belongs to the second (hazardous only within 600 s before it), and the readings
after the first onset but more than 600 s before the second are not hazardous: a module
reporting normally again after an incident has been repaired or replaced.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from src.data.signals import HAZARD_HORIZON_S

LABEL_COLUMNS: tuple[str, ...] = ("fault_type", "event_id", "onset_s", "hazardous")
"""The columns label_readings adds, in this order (the simulator's names and order)."""

EVENT_COLUMNS: tuple[str, ...] = ("module_id", "onset_s", "fault_type", "event_id")
"""What label_readings needs of each event (read_events gives these, and more)."""

HEALTHY_FAULT_TYPE = "none"
"""fault_type of a reading whose module has no event (the simulator's word)."""


def label_times(frame: pd.DataFrame) -> np.ndarray:
    """The time each reading is labelled and judged by: true_time_s if known, else
    timestamp_s (epoch seconds, float64)."""
    column = "true_time_s" if "true_time_s" in frame.columns else "timestamp_s"
    return frame[column].to_numpy(dtype=np.float64)


def hazard_labels(
    timestamp_s: np.ndarray, onset_s: np.ndarray, horizon_s: float = HAZARD_HORIZON_S
) -> np.ndarray:
    """1 where onset follows within horizon_s or has passed; 0 elsewhere (NaN onset: 0).

    The simulator's rule, element by element, as int8.
    """
    to_onset = onset_s - timestamp_s
    hazardous = ((to_onset >= 0.0) & (to_onset <= horizon_s)) | (timestamp_s > onset_s)
    return hazardous.astype(np.int8)


def label_readings(
    telemetry: pd.DataFrame, events: pd.DataFrame, horizon_s: float = HAZARD_HORIZON_S
) -> pd.DataFrame:
    """telemetry with fault_type, event_id, onset_s and hazardous, derived from events.

    telemetry needs `module_id` and `timestamp_s` (epoch seconds; `true_time_s` is used
    instead where present, see label_times); events needs `module_id`, `onset_s`,
    `fault_type` and `event_id`. Rows keep their order and index; label columns already
    in telemetry are replaced where they stand, the others are added at the end in
    LABEL_COLUMNS order. Readings of a module without an event get fault_type "none",
    event_id "", onset_s NaN and hazardous 0. Events of modules that have no readings
    label nothing (read_events reports them as problems).
    """
    missing = [name for name in EVENT_COLUMNS if name not in events.columns]
    if missing:
        raise ValueError(f"events lacks column(s) {', '.join(missing)}")
    if events.duplicated(["module_id", "onset_s"]).any():
        raise ValueError("events holds the same (module_id, onset_s) twice")
    out = telemetry.copy()
    times = label_times(out)
    n = len(out)
    fault_type = np.full(n, HEALTHY_FAULT_TYPE, dtype=object)
    event_id = np.full(n, "", dtype=object)
    onset = np.full(n, np.nan)

    if n and len(events):
        readings = pd.DataFrame(
            {
                "module_id": out["module_id"].to_numpy(dtype=object),
                "timestamp_s": times,
                "position": np.arange(n),
            }
        ).sort_values("timestamp_s", kind="stable")
        onsets = pd.DataFrame(
            {
                "module_id": events["module_id"].to_numpy(dtype=object),
                "onset_s": events["onset_s"].to_numpy(dtype=np.float64),
                "event": np.arange(len(events)),
            }
        ).sort_values("onset_s", kind="stable")
        # The next onset at or after each reading; where none is left, the last one before.
        chosen = _nearest_event(readings, onsets, "forward")
        passed = _nearest_event(readings, onsets, "backward")
        chosen = np.where(chosen >= 0, chosen, passed)
        positions = readings["position"].to_numpy()
        labelled = chosen >= 0
        picked = chosen[labelled]
        at = positions[labelled]
        fault_type[at] = events["fault_type"].to_numpy(dtype=object)[picked]
        event_id[at] = events["event_id"].to_numpy(dtype=object)[picked]
        onset[at] = events["onset_s"].to_numpy(dtype=np.float64)[picked]

    out["fault_type"] = pd.array(fault_type, dtype="str")
    out["event_id"] = pd.array(event_id, dtype="str")
    out["onset_s"] = onset
    out["hazardous"] = hazard_labels(times, onset, horizon_s)
    return out


def _nearest_event(readings: pd.DataFrame, onsets: pd.DataFrame, direction: str) -> np.ndarray:
    """For readings (sorted by time), the row of events each one's module points to, or -1.

    forward: the first onset at or after the reading; backward: the last onset before it.
    """
    merged = pd.merge_asof(
        readings,
        onsets,
        left_on="timestamp_s",
        right_on="onset_s",
        by="module_id",
        direction=direction,
        allow_exact_matches=direction == "forward",
    )
    return merged["event"].fillna(-1).to_numpy(dtype=np.int64)
