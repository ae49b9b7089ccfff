"""What a set of telemetry (and event) files holds: a dict to log, and text to print.

    report = data_report(telemetry, events)   # frames from read_telemetry / read_events
    print(format_report(report))

The dict is plain JSON (numbers, strings, lists, dicts), so it can be logged as it is, e.g.
as an MLflow artifact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from src.data.labels import label_readings
from src.data.signals import SIGNALS
from src.features.engineering import RATE_MAX_GAP_S

GAP_S = RATE_MAX_GAP_S
"""A gap is longer than this: the feature code computes no rate of change across it."""


def data_report(telemetry: pd.DataFrame, events: pd.DataFrame | None = None) -> dict[str, Any]:
    """Files, modules, readings (and those sent twice), time span, events, sampling,
    missing and unhealthy shares."""
    timestamps = telemetry["timestamp_s"].to_numpy(dtype=np.float64)
    report: dict[str, Any] = {
        "files": list(telemetry.attrs.get("source_files", [])),
        "readings": len(telemetry),
        "modules": int(telemetry["module_id"].nunique()),
        # read_telemetry keeps one copy of a reading sent twice: how many were dropped.
        "readings_sent_twice": int(telemetry.attrs.get("exact_duplicates_dropped", 0)),
    }
    if "rack_id" in telemetry.columns:
        report["racks"] = int(telemetry["rack_id"].nunique())
    if len(telemetry):
        first, last = float(timestamps.min()), float(timestamps.max())
        report["time_span"] = {
            "first": _iso(first),
            "last": _iso(last),
            "hours": round((last - first) / 3600.0, 3),
        }
    report["sampling"] = _sampling(telemetry)
    report["missing_share"] = {s.name: _share(telemetry[s.name].isna().to_numpy()) for s in SIGNALS}
    report["outside_healthy_share"] = {}
    for s in SIGNALS:
        values = telemetry[s.name].to_numpy(dtype=np.float64)
        present = values[~np.isnan(values)]
        outside = (present < s.normal_low) | (present > s.normal_high)
        report["outside_healthy_share"][s.name] = _share(outside)
    if "chemistry" in telemetry.columns:
        per_module = telemetry.groupby("module_id", sort=True)["chemistry"].first()
        report["chemistry_modules"] = {k: int(v) for k, v in per_module.value_counts().items()}
    if events is not None:
        report["events"] = _events(telemetry, events)
    return report


def _share(mask: np.ndarray) -> float:
    return round(float(mask.mean()), 6) if mask.size else 0.0


def _sampling(telemetry: pd.DataFrame) -> dict[str, Any]:
    ordered = telemetry.sort_values(["module_id", "timestamp_s"], kind="stable")
    steps = ordered["timestamp_s"].diff().to_numpy()
    same = (ordered["module_id"].to_numpy() == np.roll(ordered["module_id"].to_numpy(), 1))[1:]
    steps = steps[1:][same]
    if steps.size == 0:
        return {"intervals": 0}
    gaps = steps[steps > GAP_S]
    return {
        "intervals": int(steps.size),
        "median_s": round(float(np.median(steps)), 3),
        "p95_s": round(float(np.quantile(steps, 0.95)), 3),
        "gap_threshold_s": GAP_S,
        "gaps": int(gaps.size),
        "gap_hours": round(float(gaps.sum()) / 3600.0, 3),
        "longest_gap_s": round(float(steps.max()), 3) if gaps.size else None,
    }


def _events(telemetry: pd.DataFrame, events: pd.DataFrame) -> dict[str, Any]:
    by_type = events["fault_type"].value_counts().sort_index()
    labelled = label_readings(telemetry[["module_id", "timestamp_s"]], events)
    return {
        "files": list(events.attrs.get("source_files", [])),
        "count": len(events),
        "modules": int(events["module_id"].nunique()),
        "by_fault_type": {str(k): int(v) for k, v in by_type.items()},
        "hazardous_readings": int(labelled["hazardous"].sum()),
        "hazardous_share": _share(labelled["hazardous"].to_numpy() == 1),
    }


def _iso(seconds: float) -> str:
    return np.datetime_as_string(np.datetime64(round(seconds * 1e6), "us"), unit="s") + "Z"


def _percent(share: float) -> str:
    if share == 0:
        return "0 %"
    return f"{share * 100:.2f} %" if share >= 0.0001 else "<0.01 %"


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text, for a terminal or a log."""
    lines = [f"telemetry: {report['readings']:,} readings of {report['modules']:,} modules"]
    if "racks" in report:
        lines[0] += f" in {report['racks']:,} racks"
    if report.get("readings_sent_twice"):
        lines[0] += f" ({report['readings_sent_twice']:,} more sent twice, kept once)"
    for file in report["files"]:
        lines.append(
            f"  {file['path']}: {file['rows']:,} rows, {file['bytes']:,} bytes, "
            f"sha256 {file['sha256']}"
        )
    span = report.get("time_span")
    if span:
        lines.append(f"time span: {span['first']} to {span['last']} ({span['hours']:g} h)")
    sampling = report["sampling"]
    if sampling.get("intervals"):
        gap_text = f"{sampling['gaps']:,} gaps over {sampling['gap_threshold_s']:g} s"
        if sampling["gaps"]:
            gap_text += (
                f" ({sampling['gap_hours']:g} h in all, longest {sampling['longest_gap_s']:g} s)"
            )
        lines.append(
            f"sampling: median {sampling['median_s']:g} s, p95 {sampling['p95_s']:g} s, " + gap_text
        )
    if "chemistry_modules" in report:
        counts = ", ".join(f"{k} {v:,}" for k, v in report["chemistry_modules"].items())
        lines.append(f"chemistry (modules): {counts}")
    events = report.get("events")
    if events is not None:
        kinds = ", ".join(f"{k} {v:,}" for k, v in events["by_fault_type"].items()) or "none"
        lines.append(
            f"events: {events['count']:,} on {events['modules']:,} modules ({kinds}); "
            f"hazardous readings {events['hazardous_readings']:,} "
            f"({_percent(events['hazardous_share'])})"
        )
        for file in events["files"]:
            lines.append(f"  {file['path']}: {file['rows']:,} rows, sha256 {file['sha256']}")
    width = max(len(s.name) for s in SIGNALS)
    lines.append(f"{'signal':<{width}}  {'missing':>9}  {'outside healthy':>15}  healthy range")
    for s in SIGNALS:
        missing = _percent(report["missing_share"][s.name])
        outside = _percent(report["outside_healthy_share"][s.name])
        healthy = f"{s.normal_low:g} to {s.normal_high:g} {s.unit}"
        lines.append(f"{s.name:<{width}}  {missing:>9}  {outside:>15}  {healthy}")
    return "\n".join(lines)
