"""Training on a site's own files: read and check them, report what they hold, split them
by module, refuse what is too small, and optionally add simulated data.

    own = read_own_data("site-a/telemetry", "site-a/events.csv")
    result = train_on_own_data(own, config, mix_simulated=False)

The readings are labelled by `label_readings` (the simulator's rule, training's horizon)
and split by `split_modules`: every module's series lands whole in one of train,
validation and test, faulty and healthy modules separately, so the test split's events
are incidents the model never saw. The test split is always the site's own data alone:
`--mix-simulated` adds simulated sites to training and validation only, so the run's
test metrics always say how the model warns of this site's own incidents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.data.labels import HEALTHY_FAULT_TYPE, label_readings
from src.data.signals import SIGNAL_NAMES
from src.data.simulator import fault_plan, simulate
from src.data.telemetry_files import FILE_SCHEMA_VERSION, read_events, read_telemetry
from src.data.telemetry_report import data_report, format_report
from src.training.config import TrainingConfig
from src.training.data import Progress, split_modules
from src.training.train import TrainingResult, train_on

SPLIT_FRACTIONS = {"validation": 0.2, "test": 0.2}
"""Shares of the faulty (and, separately, of the healthy) modules in validation and test."""

MIXED_SPLIT_FRACTIONS = {"validation": 0.2, "test": 0.5}
"""The same with --mix-simulated: the simulator supplies most of training, so half of a
small site's modules can go to the test split, the one its numbers come from."""

MIN_EVENTS = {"train": 4, "validation": 2, "test": 3}
"""Fault events each split must hold. Fewer in test and a lead-time share is one or two
incidents' luck; fewer in validation and the levels are chosen on next to nothing; fewer
in training and there is nothing to learn from. With --mix-simulated only the test
minimum applies to the site's own data (the simulator supplies the rest)."""

MIN_HEALTHY_MODULES = 3
"""One healthy module per split at least: false alarms are counted on healthy modules."""

SIMULATED_PREFIX = "sim:"
"""Simulated module ids are prefixed so they can never be taken for a site's module."""

OWN_COLUMNS: tuple[str, ...] = (
    "module_id",
    "rack_id",
    "chemistry",
    "timestamp_s",
    *SIGNAL_NAMES,
    "fault_type",
    "event_id",
    "onset_s",
    "hazardous",
)
"""What training keeps of the labelled files (source_file and source_row are for messages)."""


class NotEnoughDataError(ValueError):
    """The files are valid but too few to train or to judge a model honestly; the message
    says what is missing, how much more is needed, and what to do."""


@dataclass(frozen=True)
class OwnData:
    frame: pd.DataFrame
    """Labelled readings, OWN_COLUMNS present in the files, sorted by module and time."""
    report: dict[str, Any]
    """data_report of the telemetry and events (files with SHA-256, sampling, shares)."""
    telemetry_path: str
    events_path: str


def read_own_data(
    telemetry_path: str | Path,
    events_path: str | Path,
    horizon_s: float,
    *,
    check_units: bool = True,
) -> OwnData:
    """Read, check (TelemetryValidationError names every bad file, row and column),
    report and label a site's files."""
    telemetry = read_telemetry(telemetry_path, check_units=check_units)
    events = read_events(events_path, telemetry=telemetry)
    report = data_report(telemetry, events)
    return OwnData(
        frame=own_frame(telemetry, events, horizon_s),
        report=report,
        telemetry_path=str(telemetry_path),
        events_path=str(events_path),
    )


def own_frame(telemetry: pd.DataFrame, events: pd.DataFrame, horizon_s: float) -> pd.DataFrame:
    """read_telemetry's and read_events' frames as training's input: labelled, sorted by
    (module, time), a missing chemistry as "" (unknown, as the service takes it)."""
    labelled = label_readings(telemetry, events, horizon_s)
    frame = labelled[[name for name in OWN_COLUMNS if name in labelled.columns]]
    if "chemistry" in frame.columns:
        frame = frame.assign(chemistry=frame["chemistry"].fillna("").astype(object))
    order = np.lexsort(
        (frame["timestamp_s"].to_numpy(), pd.factorize(frame["module_id"], sort=True)[0])
    )
    return frame.iloc[order].reset_index(drop=True)


def split_fractions(mix_simulated: bool) -> dict[str, float]:
    """The share of modules in each split (train: the rest)."""
    fractions = MIXED_SPLIT_FRACTIONS if mix_simulated else SPLIT_FRACTIONS
    return {"train": 1.0 - sum(fractions.values()), **fractions}


def own_sets(
    frame: pd.DataFrame, seed: int, mix_simulated: bool = False
) -> dict[str, pd.DataFrame]:
    """train, validation and test: whole modules each (split_modules)."""
    fractions = split_fractions(mix_simulated)
    masks = split_modules(frame, seed, fractions["validation"], fractions["test"])
    return {name: frame[mask].reset_index(drop=True) for name, mask in masks.items()}


def _events(frame: pd.DataFrame) -> int:
    ids = frame["event_id"].to_numpy(dtype=object)
    return int(np.unique(ids[ids != ""]).size)


def split_counts(n_modules: int, fractions: dict[str, float]) -> dict[str, int]:
    """How many of n_modules (faulty, or healthy) split_modules puts in each split."""
    test = max(1, round(n_modules * fractions["test"]))
    validation = max(1, round(n_modules * fractions["validation"]))
    return {"train": max(n_modules - test - validation, 0), "validation": validation, "test": test}


def modules_needed(split: str, events_needed: int, fractions: dict[str, float]) -> int:
    """Fewest faulty modules (one event each) for the split to get events_needed."""
    n = events_needed
    while split_counts(n, fractions)[split] < events_needed:
        n += 1
    return n


def check_enough(sets: dict[str, pd.DataFrame], mix_simulated: bool) -> None:
    """Raise NotEnoughDataError, with every shortfall, if the splits cannot train and judge
    a model honestly."""
    whole = pd.concat(sets.values(), ignore_index=True)
    modules = whole.groupby("module_id", sort=False)["fault_type"].first()
    faulty = int((modules != HEALTHY_FAULT_TYPE).sum())
    healthy = int((modules == HEALTHY_FAULT_TYPE).sum())
    shortfalls = []
    checked = ("test",) if mix_simulated else ("train", "validation", "test")
    for name in checked:
        have, need = _events(sets[name]), MIN_EVENTS[name]
        if have >= need:
            continue
        fractions = split_fractions(mix_simulated)
        share = fractions[name]
        modules_for = modules_needed(name, need, fractions)
        shortfalls.append(
            f"the {name} split holds {have} fault event(s) and needs at least {need}; "
            f"{share:.0%} of the modules with an event go to {name}, so at least "
            f"{modules_for} modules with an event are needed, and the files have {faulty} "
            f"({max(modules_for - faulty, 0)} more)"
        )
    if not mix_simulated and healthy < MIN_HEALTHY_MODULES:
        shortfalls.append(
            f"{healthy} healthy module(s) (no event): at least {MIN_HEALTHY_MODULES} are "
            "needed, one per split, to count false alarms"
        )
    if not shortfalls:
        return
    remedy = (
        "Add incidents to the events file together with their modules' telemetry (more "
        "racks, or a longer period)"
    )
    if not mix_simulated:
        remedy += ", or pass --mix-simulated to let simulated sites supply training and "
        remedy += "validation (the test split stays your own data)"
    raise NotEnoughDataError(
        "too little data to train and evaluate honestly:\n- "
        + "\n- ".join(shortfalls)
        + f"\n{remedy}."
    )


def simulated_addition(config: TrainingConfig, report: Progress) -> dict[str, pd.DataFrame]:
    """The config's simulated train and validation sites, module ids prefixed."""
    frames = {}
    for name, site in config.sites().items():
        if name not in ("train", "validation"):
            continue
        frame = simulate(site, progress=lambda done, total, n=name: report(f"sim {n}", done, total))
        frame["span_s"] = frame["event_id"].map(fault_plan(site)["span_s"]).astype(np.float64)
        for column in ("module_id", "rack_id", "event_id"):
            values = frame[column].astype(str)
            frame[column] = np.where(values == "", "", SIMULATED_PREFIX + values)
        frames[name] = frame
    return frames


def mixed(own: pd.DataFrame, simulated: pd.DataFrame) -> pd.DataFrame:
    """A site's readings and simulated ones in one frame; the site's get the simulator's
    columns as their own values say (true time = timestamp, no look-alike known)."""
    own = own.assign(
        true_time_s=own["timestamp_s"],
        lookalike="",
        precursor_pattern="",
        span_s=np.nan,
    )
    for column in ("rack_id", "chemistry"):
        if column not in own.columns:
            own[column] = ""
    return pd.concat([own, simulated[list(own.columns)]], ignore_index=True)


def train_on_own_data(
    own: OwnData,
    config: TrainingConfig,
    mix_simulated: bool = False,
    progress: Progress | None = None,
) -> tuple[TrainingResult, dict[str, Any]]:
    """Split, check, (mix,) train; the result and the data record log_run logs."""
    report = progress or (lambda stage, done, total: None)
    sets = own_sets(own.frame, config.seed, mix_simulated)
    check_enough(sets, mix_simulated)
    counts = {
        name: {
            "readings": len(frame),
            "modules": int(frame["module_id"].nunique()),
            "events": _events(frame),
        }
        for name, frame in sets.items()
    }
    if mix_simulated:
        added = simulated_addition(config, report)
        for name, frame in added.items():
            counts[name]["simulated_readings"] = len(frame)
            counts[name]["simulated_events"] = _events(frame)
            sets[name] = mixed(sets[name], frame)
    result = train_on(sets, config, report)
    return result, data_record(own, counts, mix_simulated)


def files_digest(files: list[dict[str, Any]]) -> str:
    """One SHA-256 over every file's path-free digest, in name order: equal for the same
    data wherever it is mounted, so two runs' data compare with one value."""
    digests = sorted(str(file["sha256"]) for file in files)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def data_record(own: OwnData, splits: dict[str, Any], mix_simulated: bool) -> dict[str, Any]:
    """What the run logs of its data: flat params (comparable across runs in the MLflow
    UI) and the whole report (artifact), with each file's path, rows, bytes and SHA-256."""
    telemetry_files = own.report["files"]
    event_files = own.report["events"]["files"]
    params = {
        "data.source": "files+simulator" if mix_simulated else "files",
        "data.schema_version": FILE_SCHEMA_VERSION,
        "data.telemetry_path": own.telemetry_path,
        "data.events_path": own.events_path,
        "data.telemetry_files": len(telemetry_files),
        "data.telemetry_sha256": files_digest(telemetry_files),
        "data.events_sha256": files_digest(event_files),
        "data.readings": own.report["readings"],
        "data.modules": own.report["modules"],
        "data.events": own.report["events"]["count"],
    }
    for name, numbers in splits.items():
        params.update({f"data.{name}.{key}": value for key, value in numbers.items()})
    report = {**own.report, "splits": splits}
    text = format_report(own.report) + "\n" + format_splits(splits)
    return {"params": params, "report": report, "text": text}


def format_splits(splits: dict[str, Any]) -> str:
    """The splits of data_record's report, one line each."""
    lines = ["splits (whole modules; the test split is the site's own):"]
    for name, numbers in splits.items():
        line = f"  {name}: {numbers['readings']:,} readings of {numbers['modules']:,} modules, "
        line += f"{numbers['events']:,} events"
        if "simulated_readings" in numbers:
            line += (
                f", plus {numbers['simulated_readings']:,} simulated readings with "
                f"{numbers['simulated_events']:,} events"
            )
        lines.append(line)
    return "\n".join(lines)


def simulator_record() -> dict[str, Any]:
    """The data record of a run trained on the simulator alone."""
    return {
        "params": {"data.source": "simulator", "data.schema_version": FILE_SCHEMA_VERSION},
        "report": None,
        "text": "",
    }
