"""A batch of raw readings as arrays: what the API hands the service, whatever the wire format.

The one type shared by the HTTP layer (which parses requests into it), the prediction
service (which scores it) and batch tools, so none of them depends on another's internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReadingBatch:
    """Readings of any modules, in any order."""

    module_ids: Sequence[str]
    timestamps_s: np.ndarray
    """Epoch seconds, float64, shape (n,)."""
    signals: np.ndarray
    """float64, shape (n, len(SIGNAL_NAMES)), NaN where a sensor reported nothing."""
    timestamps_sent: Sequence[Any] | None = None
    """Each reading's timestamp as the client wrote it, for answers to echo; None when the
    batch did not come from a client."""
    chemistry: Sequence[str | None] | None = None
    """Each reading's module chemistry as given (e.g. "LFP"); None: none was given."""
    repeats: np.ndarray | None = None
    """Per reading, the index of an earlier identical reading of the batch it repeats (a
    retry), or -1; None when no reading repeats."""

    def select(self, rows: np.ndarray) -> ReadingBatch:
        """The batch's rows at these positions (no repeats among them)."""
        return ReadingBatch(
            module_ids=[self.module_ids[i] for i in rows],
            timestamps_s=self.timestamps_s[rows],
            signals=self.signals[rows],
            timestamps_sent=None
            if self.timestamps_sent is None
            else [self.timestamps_sent[i] for i in rows],
            chemistry=None if self.chemistry is None else [self.chemistry[i] for i in rows],
        )

    def __len__(self) -> int:
        return int(self.timestamps_s.shape[0])
