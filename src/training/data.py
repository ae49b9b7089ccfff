"""The data of a run: telemetry frames per set, and each set's features, labels and guard
levels, computed exactly as the service computes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.data.labels import hazard_labels, label_times
from src.data.signals import SIGNAL_NAMES
from src.data.simulator import fault_plan, simulate
from src.features.engineering import chemistry_codes, compute_features
from src.levels import GUARDS, guard_hits, previous_readings
from src.training.config import TrainingConfig

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): how far a long stage has come."""


def simulated_sets(config: TrainingConfig, report: Progress) -> dict[str, pd.DataFrame]:
    """Each set a site of its own (other seeds: other modules, events and look-alikes),
    with every event's precursor span for judging lead times."""
    frames = {}
    for name, site in config.sites().items():
        frame = simulate(site, progress=lambda done, total, n=name: report(n, done, total))
        spans = fault_plan(site)["span_s"]
        frame["span_s"] = frame["event_id"].map(spans).astype(np.float64)
        frames[name] = frame
    return frames


@dataclass(frozen=True)
class Prepared:
    """One set as the model sees it."""

    frame: pd.DataFrame
    features: np.ndarray
    """Every FEATURE_NAMES column, one row per reading of frame."""
    labels: np.ndarray
    chemistry: np.ndarray
    """The chemistry codes the features were computed with (NaN: unknown)."""
    guard_level: np.ndarray
    """Per reading, the highest level a (persistent) guard raises: what the service adds."""


def masked(frame: pd.DataFrame, absent: tuple[str, ...]) -> pd.DataFrame:
    """The frame as a site without these sensors reports it: always missing."""
    if not absent:
        return frame
    frame = frame.copy()
    frame[list(absent)] = np.nan
    return frame


def chemistry_of(frame: pd.DataFrame, unknown_fraction: float, seed: int) -> np.ndarray:
    """Codes of each reading's chemistry; a share of modules (by seed) shown as unknown."""
    if "chemistry" not in frame.columns:
        return np.full(len(frame), np.nan)
    names = frame["chemistry"].to_numpy(dtype=object).copy()
    if unknown_fraction > 0:
        modules = np.unique(frame["module_id"].to_numpy())
        rng = np.random.default_rng(seed)
        hidden = set(modules[rng.random(modules.size) < unknown_fraction])
        names[np.isin(frame["module_id"].to_numpy(), list(hidden))] = None
    return chemistry_codes(list(names), len(frame))


def features_of(
    frame: pd.DataFrame, chemistry: np.ndarray | None = None, max_history_s: float | None = None
) -> np.ndarray:
    """Engineered features of telemetry rows, exactly as the service computes them; with
    max_history_s, as if each reading's module had only that much history."""
    if chemistry is None:
        chemistry = chemistry_of(frame, 0.0, 0)
    return compute_features(
        frame["module_id"].to_numpy(),
        frame["timestamp_s"].to_numpy(dtype=np.float64),
        frame[list(SIGNAL_NAMES)].to_numpy(dtype=np.float64),
        chemistry,
        max_history_s=max_history_s,
    )


def guard_levels(frame: pd.DataFrame, features: np.ndarray, chemistry: np.ndarray) -> np.ndarray:
    previous = previous_readings(
        frame["module_id"].to_numpy(), frame["timestamp_s"].to_numpy(dtype=np.float64)
    )
    hits = guard_hits(features, chemistry, previous)
    levels = np.array([guard.level for guard in GUARDS])
    return np.where(hits, levels, 0).max(axis=1).astype(np.int8)


def labels_of(frame: pd.DataFrame, horizon_s: float) -> np.ndarray:
    """Hazardous when onset follows within horizon_s of the reading's time (its true time
    where known: label_times)."""
    return hazard_labels(label_times(frame), frame["onset_s"].to_numpy(dtype=np.float64), horizon_s)


def prepare(
    frame: pd.DataFrame, config: TrainingConfig, unknown_chemistry_fraction: float = 0.0
) -> Prepared:
    # A reading sent twice counts once, as the service answers a retry.
    frame = frame.drop_duplicates(["module_id", "timestamp_s", *SIGNAL_NAMES]).reset_index(
        drop=True
    )
    frame = masked(frame, config.absent_signals)
    chemistry = chemistry_of(frame, unknown_chemistry_fraction, config.seed)
    features = features_of(frame, chemistry)
    return Prepared(
        frame=frame,
        features=features,
        labels=labels_of(frame, config.label_horizon_s),
        chemistry=chemistry,
        guard_level=guard_levels(frame, features, chemistry),
    )


def split_modules(
    frame: pd.DataFrame, seed: int, validation_fraction: float = 0.2, test_fraction: float = 0.2
) -> dict[str, np.ndarray]:
    """Row masks for train/validation/test that keep every module's series in one set, for
    data that is one site (an operator's files): faulty and healthy modules are split
    separately, so every set holds whole fault events of its own, never seen in training."""
    rng = np.random.default_rng(seed)
    modules = frame.groupby("module_id", sort=True)["fault_type"].first()
    assignment: dict[str, str] = {}
    for is_faulty in (True, False):
        group = modules[(modules != "none") == is_faulty].index.to_numpy()
        group = group[rng.permutation(len(group))]
        n_test = max(1, round(len(group) * test_fraction))
        n_validation = max(1, round(len(group) * validation_fraction))
        for position, module_id in enumerate(group):
            if position < n_test:
                assignment[module_id] = "test"
            elif position < n_test + n_validation:
                assignment[module_id] = "validation"
            else:
                assignment[module_id] = "train"
    split_of_row = frame["module_id"].map(assignment).to_numpy()
    return {name: split_of_row == name for name in ("train", "validation", "test")}
