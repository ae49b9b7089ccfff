"""Problems found in telemetry and event files, and the value checks that find them.

Every check is vectorised over a whole column and reports through a `ProblemLog`, which
keeps the first `MAX_SHOWN_PER_KIND` messages of each kind and counts the rest, so a file
with a million bad values gives twenty clear messages and a count, not a million lines.

Messages name the column, the file and (where there is one) the 1-based data row
(the header is not a row: data row 1 is line 2 of a CSV), and say what to do.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from src.data.signals import SIGNALS, Signal

MAX_SHOWN_PER_KIND = 20
"""Messages kept per kind of problem; the rest are counted."""

PROBLEM_KINDS: tuple[str, ...] = (
    "unreadable_file",
    "missing_column",
    "unknown_column",
    "wrong_type",
    "wrong_unit",
    "bad_timestamp",
    "bad_module_id",
    "bad_value",
    "out_of_range",
    "placeholder_value",
    "duplicate_reading",
    "inconsistent_module",
    "duplicate_event",
    "unknown_module",
    "onset_outside_readings",
)
"""Every kind of problem, in the order they are shown."""

MIN_VALUES_FOR_UNIT_CHECK = 20
"""A column needs this many numbers (non-zero, for a scale) before its unit is judged."""
AS_GIVEN_HEALTHY_MAX_SHARE = 0.5
"""A unit is suspected only when at most this share of values is plausible as written ..."""
CONVERTED_HEALTHY_MIN_SHARE = 0.8
"""... and at least this share falls in the healthy range once converted."""
SMALLEST_PLAUSIBLE_PPM = 0.01
"""No gas sensor resolves 0.01 ppm: non-zero readings below it are a unit (% vol), not air."""
PLACEHOLDER_MIN_COUNT = 3
"""Out-of-range values that are all one number, this many times or more: a 'no reading' code."""
CENTRAL_SHARE = 0.98
"""The unit message quotes the range of this central share of the values."""


@dataclass(frozen=True)
class Problem:
    """One problem: what it is, where it is, what to do (the message says all three)."""

    kind: str
    message: str
    file: str | None = None
    row: int | None = None
    """1-based data row within file (header not counted), when the problem has one."""
    column: str | None = None


class TelemetryValidationError(ValueError):
    """Files that cannot be used as they are; `problems` says every reason, `counts` how many."""

    def __init__(self, what: str, problems: list[Problem], counts: Counter[str]) -> None:
        self.what = what
        self.problems = problems
        self.counts = counts
        super().__init__(self._text())

    def _text(self) -> str:
        total = sum(self.counts.values())
        lines = [f"{total:,} problem(s) in the {self.what}; fix them and load the files again:"]
        for kind in PROBLEM_KINDS:
            shown = [p for p in self.problems if p.kind == kind]
            lines.extend(f"- {p.message}" for p in shown)
            hidden = self.counts[kind] - len(shown)
            if hidden > 0:
                lines.append(
                    f"  (and {hidden:,} more {kind.replace('_', ' ')} problem(s) like these, "
                    f"{self.counts[kind]:,} in all)"
                )
        return "\n".join(lines)


class ProblemLog:
    """Collects problems: the first MAX_SHOWN_PER_KIND of each kind, and a count of all."""

    def __init__(self, limit: int = MAX_SHOWN_PER_KIND) -> None:
        self.limit = limit
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()

    def __bool__(self) -> bool:
        return sum(self.counts.values()) > 0

    def add(self, problem: Problem) -> None:
        self.extend(problem.kind, 1, [problem])

    def extend(self, kind: str, total: int, problems: Iterable[Problem]) -> None:
        """Count `total` problems of `kind`; keep messages from `problems` while there is room.

        `problems` may be a generator: only the messages that are kept are ever built.
        """
        if kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        if total <= 0:
            return
        room = self.limit - sum(1 for p in self.problems if p.kind == kind)
        for problem, _ in zip(problems, range(max(room, 0)), strict=False):
            self.problems.append(problem)
        self.counts[kind] += total

    def raise_if_any(self, what: str) -> None:
        if self:
            raise TelemetryValidationError(what, self.problems, self.counts)


def where(column: str | None, file: str, row: int | None = None) -> str:
    """`h2_ppm in telemetry/a.csv row 17`: the start of every located message."""
    text = f"{column} in {file}" if column else file
    return text if row is None else f"{text} row {row}"


def number(value: float) -> str:
    """A value as people read it: three significant digits, never in exponent form."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    return np.format_float_positional(float(f"{value:.3g}"), trim="-")


def exact(value: float) -> str:
    """A value as written (up to 10 significant digits): for the one value a message is about."""
    return f"{value:.10g}"


def quoted(value: object, width: int = 40) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def row_list(rows: np.ndarray, shown: int = 3) -> str:
    """`rows 2, 3, 9` or `rows 2, 3, 9 and 1,204 more`."""
    head = ", ".join(str(int(r)) for r in rows[:shown])
    rest = len(rows) - shown
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {head}" + (f" and {rest:,} more" if rest > 0 else "")


def also_in(rows: np.ndarray) -> str:
    """` (also in rows 9, 12 and 40 more)` after a message about rows[0]; empty if one row."""
    if len(rows) < 2:
        return ""
    return f" (also in {row_list(rows[1:])})"


# -- units ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitSuspect:
    """A unit people write instead of the expected one, and how to convert from it."""

    name: str
    factor: float
    offset: float
    advice: str

    def convert(self, values: np.ndarray) -> np.ndarray:
        return values * self.factor + self.offset


_FAHRENHEIT = UnitSuspect("°F", 5.0 / 9.0, -32.0 * 5.0 / 9.0, "convert to °C: (°F − 32) / 1.8")
_KELVIN = UnitSuspect("kelvin", 1.0, -273.15, "convert to °C: subtract 273.15")
UNIT_SUSPECTS: dict[str, tuple[UnitSuspect, ...]] = {
    "°C": (_KELVIN, _FAHRENHEIT),
    "V": (UnitSuspect("millivolts", 1e-3, 0.0, "convert to V: divide by 1000"),),
    "A": (UnitSuspect("milliamperes", 1e-3, 0.0, "convert to A: divide by 1000"),),
    "%": (UnitSuspect("a fraction (0 to 1)", 100.0, 0.0, "convert to %: multiply by 100"),),
    "mΩ": (
        UnitSuspect("ohms", 1e3, 0.0, "convert to mΩ: multiply by 1000"),
        UnitSuspect("microohms", 1e-3, 0.0, "convert to mΩ: divide by 1000"),
    ),
    "ppm": (
        UnitSuspect("% vol", 1e4, 0.0, "convert to ppm: multiply by 10000"),
        UnitSuspect("ppb", 1e-3, 0.0, "convert to ppm: divide by 1000"),
    ),
    "kPa": (
        UnitSuspect("pascals", 1e-3, 0.0, "convert to kPa: divide by 1000"),
        UnitSuspect("hPa or mbar", 0.1, 0.0, "convert to kPa: divide by 10"),
        UnitSuspect("bar", 100.0, 0.0, "convert to kPa: multiply by 100"),
        UnitSuspect("psi", 6.894757, 0.0, "convert to kPa: multiply by 6.895"),
    ),
}
"""Per unit of signals.py, the wrong units to look for (the common failure of real files)."""


def _plausible_share(signal: Signal, values: np.ndarray) -> float:
    """Share of values in the healthy range, where non-zero gas readings under the sensors'
    resolution do not count: in % vol every healthy reading is such a value."""
    healthy = (values >= signal.normal_low) & (values <= signal.normal_high)
    if signal.unit == "ppm":
        healthy &= (values == 0) | (values >= SMALLEST_PLAUSIBLE_PPM)
    return float(healthy.mean())


def wrong_unit_message(signal: Signal, values: np.ndarray, file: str) -> str | None:
    """A message if a column's finite values look like another unit, else None."""
    best: tuple[float, UnitSuspect] | None = None
    for suspect in UNIT_SUSPECTS.get(signal.unit, ()):
        # Zero is zero in every scaled unit, so zeros (rests, clean air) say nothing.
        judged = values if suspect.offset else values[values != 0]
        if judged.size < MIN_VALUES_FOR_UNIT_CHECK:
            continue
        if _plausible_share(signal, judged) > AS_GIVEN_HEALTHY_MAX_SHARE:
            continue
        converted = _plausible_share(signal, suspect.convert(judged))
        if converted >= CONVERTED_HEALTHY_MIN_SHARE and (best is None or converted > best[0]):
            best = (converted, suspect)
    if best is None:
        return None
    tail = (1.0 - CENTRAL_SHARE) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    share = float(((values >= low) & (values <= high)).mean())
    return (
        f"{where(signal.name, file)}: {share * 100:.0f} % of values are "
        f"{number(low)}–{number(high)}, the accepted range is {signal.sensor_min:g} to "
        f"{signal.sensor_max:g} and healthy {signal.normal_low:g} to {signal.normal_high:g} "
        f"{signal.unit}: this looks like {best[1].name}; {best[1].advice}"
    )


# -- values ---------------------------------------------------------------------------------


def check_signal_values(
    log: ProblemLog,
    signal: Signal,
    values: np.ndarray,
    file: str,
    rows: np.ndarray,
    units: bool = True,
) -> None:
    """Wrong unit (one message per column) or else out-of-range values (one per row).

    values are float64 with NaN for missing; rows their 1-based row numbers; units=False
    skips the wrong-unit heuristics.
    """
    finite = values[np.isfinite(values)]
    message = wrong_unit_message(signal, finite, file) if units else None
    if message is not None:
        # The unit message explains every out-of-range value of this column: not repeated.
        log.add(Problem("wrong_unit", message, file=file, column=signal.name))
        return
    with np.errstate(invalid="ignore"):
        outside = (values < signal.sensor_min) | (values > signal.sensor_max)
    bad = np.flatnonzero(outside)
    if bad.size == 0:
        return
    accepted = f"the accepted range {signal.sensor_min:g} to {signal.sensor_max:g} {signal.unit}"
    distinct = np.unique(values[bad])
    if distinct.size == 1 and bad.size >= PLACEHOLDER_MIN_COUNT:
        code = exact(float(distinct[0]))
        log.add(
            Problem(
                "placeholder_value",
                f"{where(signal.name, file)}: {bad.size:,} values are exactly {code} "
                f"({row_list(rows[bad])}), outside {accepted}: this looks like a 'no reading' "
                "code; leave those cells empty (empty means missing)",
                file=file,
                column=signal.name,
            )
        )
        return
    log.extend(
        "out_of_range",
        bad.size,
        (
            Problem(
                "out_of_range",
                f"{where(signal.name, file, int(rows[i]))}: {exact(float(values[i]))} is "
                f"outside {accepted}; correct it, or leave the cell empty if the sensor "
                "reported nothing",
                file=file,
                row=int(rows[i]),
                column=signal.name,
            )
            for i in bad
        ),
    )


def signal_by_name() -> dict[str, Signal]:
    return {signal.name: signal for signal in SIGNALS}


def iter_groups(keys: np.ndarray) -> Iterator[tuple[object, np.ndarray]]:
    """(value, positions) for each distinct value of keys, in order of first appearance."""
    uniques, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=uniques.size))
    starts = np.concatenate([[0], bounds[:-1]])
    for group in np.argsort(first):
        yield uniques[group], order[starts[group] : bounds[group]]
