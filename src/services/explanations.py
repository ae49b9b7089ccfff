"""Why the model gave a reading its probability: exact XGBoost contributions, by raw signal.

`Booster.predict(..., pred_contribs=True)` gives each feature's exact TreeSHAP
contribution to the reading's log-odds, plus a base value (the bias column) that is the
same for every reading. Summed over the features of one group (FEATURE_GROUPS: the raw
signal a feature is computed from, a quantity of two signals, the chemistry, the history)
they say which signals moved the reading away from the base. The groups' contributions
plus the base add up to the booster's log-odds of the reading, whose logistic is its
hazard_probability (tests/test_explanations.py measures how closely).

Always the booster, whichever runtime scored the request: the ONNX copy has no
contributions, and the booster is the model of record. No Flask here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from src.data.signals import SIGNALS
from src.features.engineering import FEATURE_GROUP_NAMES, FEATURE_GROUPS, FEATURE_NAMES

_SIGNALS = {signal.name: signal for signal in SIGNALS}
_VALUE_FEATURE = {"history": "history_s"}
"""A group's value is the feature of its own name (a signal's level, a two-signal
quantity) or this one; the chemistry group has none (the reading says its chemistry)."""


@dataclass(frozen=True, slots=True)
class SignalContribution:
    """One group's part of a reading's log-odds."""

    signal: str
    """A raw signal's name, or a group's (`cell_voltage_spread_v`, `chemistry`, ...)."""
    log_odds: float
    value: float | None
    """The reading's value of the signal (None when missing); a two-signal quantity's
    value; the seconds of history; None for the chemistry."""
    healthy_range: tuple[float, float] | None
    """The signal's healthy range from the signal table; None for the other groups."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """A reading's largest contributions, largest magnitude first."""

    base_log_odds: float
    log_odds: float
    """The booster's log-odds of the reading: base_log_odds plus every group's part."""
    top: tuple[SignalContribution, ...]


class Explainer:
    """Contributions of one run's booster, grouped; built once when the model loads."""

    def __init__(self, booster: Any, feature_names: Sequence[str], nthread: int) -> None:
        self._booster = booster
        self._nthread = nthread
        used = {FEATURE_GROUPS[name] for name in feature_names}
        present = [group for group in FEATURE_GROUP_NAMES if group in used]
        self.groups: tuple[str, ...] = tuple(present)
        """The groups the run's features fall into, in FEATURE_GROUP_NAMES order."""
        # (features + bias, groups): contributions @ this = each group's sum; bias row 0.
        self._membership = np.zeros((len(feature_names) + 1, len(present)))
        for column, name in enumerate(feature_names):
            self._membership[column, present.index(FEATURE_GROUPS[name])] = 1.0
        self._value_columns = np.array([_value_column(group) for group in present])
        self._ranges = [
            (_SIGNALS[g].normal_low, _SIGNALS[g].normal_high) if g in _SIGNALS else None
            for g in present
        ]

    def contributions(self, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(base log-odds per row, each group's log-odds per row (rows, groups)), float64."""
        import xgboost as xgb

        matrix = xgb.DMatrix(scaled, missing=np.nan, nthread=self._nthread)
        contributions = np.asarray(
            self._booster.predict(matrix, pred_contribs=True), dtype=np.float64
        )
        return contributions[:, -1], contributions @ self._membership

    def explain(self, scaled: np.ndarray, features: np.ndarray, top: int) -> list[Explanation]:
        """The top groups of each row. scaled: the run's scaled features of the rows;
        features: every FEATURE_NAMES column of the same rows, unscaled (for the values)."""
        base, grouped = self.contributions(scaled)
        count = min(top, len(self.groups))
        order = np.argsort(-np.abs(grouped), axis=1, kind="stable")[:, :count]
        has_value = self._value_columns >= 0
        values = np.full((len(base), len(self.groups)), np.nan)
        # Rounded: a two-signal quantity reads 0.13, not 0.1299999999999999 (readings
        # carry at most a few decimals, so their own values are unchanged).
        values[:, has_value] = np.round(features[:, self._value_columns[has_value]], 6)
        totals = base + grouped.sum(axis=1)
        explanations = []
        for row, columns in enumerate(order.tolist()):
            parts = grouped[row].tolist()
            shown = values[row].tolist()
            explanations.append(
                Explanation(
                    base_log_odds=float(base[row]),
                    log_odds=float(totals[row]),
                    top=tuple(
                        SignalContribution(
                            self.groups[column],
                            parts[column],
                            None if shown[column] != shown[column] else shown[column],
                            self._ranges[column],
                        )
                        for column in columns
                    ),
                )
            )
        return explanations


def _value_column(group: str) -> int:
    """The column of FEATURE_NAMES holding the group's value, or -1."""
    name = _VALUE_FEATURE.get(group, group)
    return FEATURE_NAMES.index(name) if name in FEATURE_NAMES else -1
