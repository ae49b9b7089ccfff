"""How many of a simulated site's events could any detector see coming, model or not.

    .venv/bin/python tools/detectability_ceiling.py [--seed 44] [--events 80]

Per event, at 5 and 10 minutes before onset: the largest z-score over the channels of the
last minute's mean against the module's own 30 minutes before its fault started (in units
of that baseline's noise, floored at half a sensor step). An event no channel moves by
3 sigma cannot be warned without also warning on healthy modules' look-alikes. The
figures are docs/model.md's ceiling; the test site is seed 44 with 80 events.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from src.data.simulator import fault_plan, simulate
from src.training.config import default_site

CHANNELS = {  # channel -> the direction a precursor moves it
    "h2_ppm": 1,
    "co_ppm": 1,
    "voc_ppm": 1,
    "cell_temp_max_c": 1,
    "temp_spread": 1,
    "cell_voltage_min_v": -1,
    "voltage_spread": 1,
    "internal_resistance_mohm": 1,
    "pressure_kpa": 1,
    "smoke_obscuration_pct_per_m": 1,
}
LEADS_MIN = (5, 10)
Z_LEVELS = (3, 5, 8)
LONG_SPAN_MIN = 10.0


def event_z_scores(frame: pd.DataFrame, spans: pd.Series) -> pd.DataFrame:
    frame = frame.assign(
        temp_spread=frame.cell_temp_max_c - frame.cell_temp_avg_c,
        voltage_spread=frame.cell_voltage_max_v - frame.cell_voltage_min_v,
    )
    rows = []
    for event, series in frame[frame.event_id != ""].groupby("event_id"):
        onset, span = series.onset_s.iloc[0], spans[event]
        t = series.true_time_s.to_numpy()
        start = onset - span
        baseline = series[(t < start) & (t >= start - 1800.0)]
        row = {"event": event, "span_min": span / 60.0}
        for lead in LEADS_MIN:
            now = series[(t <= onset - lead * 60.0) & (t > onset - lead * 60.0 - 60.0)]
            best = 0.0
            for channel, sign in CHANNELS.items():
                floor = 0.5 if channel.endswith("ppm") else 1e-3
                noise = max(float(np.nanstd(baseline[channel])), floor)
                z = sign * (np.nanmean(now[channel]) - np.nanmean(baseline[channel])) / noise
                if np.isfinite(z):
                    best = max(best, float(z))
            row[f"z_{lead}min"] = best
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=44)
    parser.add_argument("--events", type=int, default=80)
    args = parser.parse_args()
    # a channel a module lacks (all NaN) is no evidence either way; numpy's warning is noise
    warnings.simplefilter("ignore", RuntimeWarning)
    site = replace(default_site(args.seed), n_fault_events=args.events)
    print(f"simulating seed {args.seed} with {args.events} events ...", flush=True)
    scores = event_z_scores(simulate(site), fault_plan(site)["span_s"])
    long = scores[scores.span_min >= LONG_SPAN_MIN]
    print(f"{len(long)} of {len(scores)} events have a precursor of >= {LONG_SPAN_MIN:g} min")
    for level in Z_LEVELS:
        shares = ", ".join(
            f"{100 * np.mean(long[f'z_{lead}min'] >= level):.0f} % at {lead} min"
            for lead in LEADS_MIN
        )
        print(f"  a channel >= {level} sigma off its own noise: {shares}")


if __name__ == "__main__":
    main()
