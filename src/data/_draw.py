"""Random draws whose ranges widen with one knob, SimulationConfig.spread.

Every physical range of the simulator (amplitudes, time constants, offsets, look-alike
intensities) is drawn through a Sampler. With spread = 1 a draw is exactly the numpy draw
over the documented range; with spread > 1 each range keeps its centre and its half-width
grows by that factor (in log space for log-uniform ranges, so they stay positive). That
is how the second, harder test set gets wider physics without a second set of numbers.
"""

from __future__ import annotations

import numpy as np


class Sampler:
    """A numpy Generator plus the spread that widens every range drawn through it."""

    def __init__(self, rng: np.random.Generator, spread: float = 1.0) -> None:
        self.rng = rng
        self.spread = spread

    def uniform(self, low: float, high: float, size: int | None = None) -> np.ndarray | float:
        """Uniform over [low, high], widened about its centre by spread."""
        centre, half = 0.5 * (low + high), 0.5 * (high - low) * self.spread
        return self.rng.uniform(centre - half, centre + half, size)

    def log_uniform(self, low: float, high: float, size: int | None = None) -> np.ndarray | float:
        """Log-uniform over [low, high] (both > 0), widened in log space by spread.

        Log-uniform is the default for amplitudes that span an order of magnitude or more:
        as many events sit between 10 and 100 ppm as between 100 and 1000 ppm.
        """
        log_low, log_high = np.log(low), np.log(high)
        centre, half = 0.5 * (log_low + log_high), 0.5 * (log_high - log_low) * self.spread
        return np.exp(self.rng.uniform(centre - half, centre + half, size))

    def fraction(self, low: float, high: float) -> float:
        """Uniform share in [low, high], widened but kept inside [0, 1]."""
        return float(np.clip(self.uniform(low, high), 0.0, 1.0))

    def normal(self, sigma: float, size: int | None = None) -> np.ndarray | float:
        """Zero-mean normal whose sigma grows with spread."""
        return self.rng.normal(0.0, sigma * self.spread, size)
