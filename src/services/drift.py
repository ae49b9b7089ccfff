"""Drift of the incoming signals against the run's training baseline (`baseline.json`),
over a sliding window of the last readings each worker scored.

Two figures per raw signal, both from the baseline's quantiles (1, 5, 25, 50, 75, 95 and
99 %), so no extra artifact is needed:
- the share of recent values outside the training range [q01, q99] (about 0.02 when
  nothing drifted: that range holds 98 % of the training values by construction);
- the population stability index over the 8 bins those quantiles bound, against the
  bins' training shares (0.01, 0.04, 0.20, 0.25, 0.25, 0.20, 0.04, 0.01). Under 0.1 is
  usually read as stable, over 0.25 as a shift.

A value equal to a quantile counts in the bin above it. Sensor readings are quantised
(gas sensors read 0 most of the time), so many training values sit exactly on a quantile
and the bins' training shares are not the levels' differences: training writes the true
shares (`bin_shares`, by `bin_shares()` below) into the baseline. For a run whose baseline
lacks them they are estimated from the levels, a tied bin's share moved to the bin its
values land in. Missing values are not counted. No Prometheus here: the service publishes
what `figures()` returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

EXPECTED_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
"""The quantile levels training writes (src/training/tracking.BASELINE_QUANTILES)."""
FLUSH_ROWS = 64
"""Readings that wait before the window's counts are updated (figures() flushes them)."""
PSI_FLOOR = 1e-4
"""A bin's share is at least this in the PSI sum, so an empty bin gives a finite term."""


@dataclass(frozen=True)
class DriftFigures:
    signals: tuple[str, ...]
    out_of_range_ratio: np.ndarray
    psi: np.ndarray
    readings: np.ndarray
    """Non-missing values per signal in the window."""


class DriftWindow:
    """The last `size` readings' quantile bins per signal, with running counts, so a
    batch costs O(batch x signals) whatever the window's size."""

    def __init__(self, baseline: dict, signals: list[str], columns: list[int], size: int) -> None:
        """signals: raw signals to watch, each with its column in the features the
        service computes; baseline: the run's baseline.json."""
        if list(baseline["quantile_levels"]) != list(EXPECTED_LEVELS):
            raise ValueError(
                f"baseline quantile levels {baseline['quantile_levels']} are not "
                f"{list(EXPECTED_LEVELS)}: drift needs the levels training writes"
            )
        self.signals = tuple(signals)
        self.columns = np.asarray(columns, dtype=np.int64)
        self.size = size
        n = len(signals)
        self.edges = np.array([baseline["features"][s]["quantiles"] for s in signals])
        if all("bin_shares" in baseline["features"][s] for s in signals):
            self.expected = np.array([baseline["features"][s]["bin_shares"] for s in signals])
        else:
            self.expected = _expected_shares(self.edges)
        self.low, self.high = self.edges[:, 0:1].T, self.edges[:, -1:].T
        self._bins = np.full((size, n), -1, dtype=np.int16)
        self._out = np.zeros((size, n), dtype=bool)
        self._head = 0
        self._counts = np.zeros(n * 8, dtype=np.int64)
        self._out_counts = np.zeros(n, dtype=np.int64)
        self._offsets = (np.arange(n) * 8)[None, :]
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._lock = threading.Lock()  # gthread workers share one service

    def observe(self, features: np.ndarray) -> None:
        """Add the batch's readings (rows of the service's feature matrix). Small batches
        wait in a list until FLUSH_ROWS have come (or figures() is asked): the window's
        numpy work costs about the same for 1 row as for 64."""
        values = features[-self.size :, self.columns]
        with self._lock:
            self._pending.append(values)
            self._pending_rows += values.shape[0]
            if self._pending_rows >= FLUSH_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        values = np.concatenate(self._pending)[-self.size :]
        self._pending, self._pending_rows = [], 0
        valid = ~np.isnan(values)
        bins = np.where(valid, self._bin_of(values), -1).astype(np.int16)
        out = valid & ((values < self.low) | (values > self.high))
        rows = (self._head + np.arange(values.shape[0])) % self.size
        self._count(self._bins[rows], self._out[rows], -1)
        self._bins[rows], self._out[rows] = bins, out
        self._count(bins, out, 1)
        self._head = int((self._head + values.shape[0]) % self.size)

    def _bin_of(self, values: np.ndarray) -> np.ndarray:
        return bin_of(values, self.edges)

    def _count(self, bins: np.ndarray, out: np.ndarray, sign: int) -> None:
        codes = (bins + self._offsets)[bins >= 0]
        self._counts += sign * np.bincount(codes, minlength=self._counts.size)
        self._out_counts += sign * out.sum(axis=0)

    def figures(self) -> DriftFigures:
        with self._lock:
            self._flush()
            counts = self._counts.reshape(-1, 8).astype(np.float64)
            out_counts = self._out_counts.astype(np.float64)
        readings = counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            observed = counts / readings[:, None]
            ratio = out_counts / readings
        kept = self.expected > 0
        actual = np.maximum(observed, PSI_FLOOR)
        expected = np.maximum(self.expected, PSI_FLOOR)
        psi = np.where(kept, (actual - expected) * np.log(actual / expected), 0.0).sum(axis=1)
        psi = np.where(readings > 0, psi, np.nan)
        return DriftFigures(self.signals, ratio, psi, readings.astype(np.int64))


def bin_of(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """values (rows, signals), edges (signals, 7): the number of quantiles <= each value,
    0 .. 7 (meaningless for a missing value)."""
    return (values[:, :, None] >= edges[None, :, :]).sum(axis=2)


def bin_shares(values: np.ndarray, quantiles: np.ndarray) -> list[float]:
    """One feature's training values' share in each of the 8 bins its quantiles bound
    (missing values left out): what training writes as `bin_shares`."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return [0.0] * 8
    bins = bin_of(present[:, None], np.asarray(quantiles)[None, :])[:, 0]
    return [float(share) for share in np.bincount(bins, minlength=8) / present.size]


def _expected_shares(edges: np.ndarray) -> np.ndarray:
    """Per signal, the training share of each of the 8 bins; a bin between two equal
    quantiles is empty, and its share goes to the next bin, where those values fall."""
    levels = np.array((0.0, *EXPECTED_LEVELS, 1.0))
    shares = np.tile(np.diff(levels), (edges.shape[0], 1))
    for k in range(1, 7):  # bin k lies between quantile k-1 and quantile k
        tied = edges[:, k - 1] == edges[:, k]
        shares[tied, k + 1] += shares[tied, k]
        shares[tied, k] = 0.0
    return shares
