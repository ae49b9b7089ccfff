"""The two issues' targets, in one place, and how one run is judged against them.

Every ratio compares two (server, shape) runs of the same round, and the run's value is
the median of the per-round ratios (rounds rotate the order, so neither side always runs
first); a latency is the median of the rounds' p99; cold start and RSS are measured once.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

HISTORY = "module history"
PEER = "performance against the strongest peer"

OURS_DEFAULT = "embedded"
"""`ours` in the peer issue's targets: the service as it ships (embedded history store)."""


@dataclass(frozen=True)
class Ratio:
    issue: str | None
    """None: shown for context, no target."""
    numerator: tuple[str, str]
    """(server key, shape) whose requests/s are divided..."""
    denominator: tuple[str, str]
    """...by these."""
    at_least: float | None = None


@dataclass(frozen=True)
class Bound:
    issue: str
    server: str
    shape: str | None
    """None: a property of the server (cold start, RSS), not of a run."""
    metric: str
    at_most: float
    unit: str


RATIOS = (
    Ratio(HISTORY, ("embedded", "stream"), ("stateless", "one"), 0.70),
    Ratio(HISTORY, ("redis", "stream"), ("stateless", "one"), 0.50),
    Ratio(HISTORY, ("embedded", "batch"), ("stateless", "batch"), 0.85),
    Ratio(HISTORY, ("redis", "batch"), ("stateless", "batch"), 0.85),
    Ratio(PEER, (OURS_DEFAULT, "batch"), ("mlserver", "batch"), 1.5),
    Ratio(PEER, (OURS_DEFAULT, "columns"), ("mlserver", "columns"), 2.0),
    Ratio(PEER, (OURS_DEFAULT, "one"), ("mlserver", "one"), 4.0),
    Ratio(PEER, (OURS_DEFAULT, "one"), ("ceiling", "one"), 0.70),
    Ratio(PEER, ("embedded", "stream"), ("stateless", "one"), 0.70),
    # Context: the same comparisons for the stateless configuration and the other peer.
    Ratio(None, ("stateless", "batch"), ("mlserver", "batch")),
    Ratio(None, ("stateless", "columns"), ("mlserver", "columns")),
    Ratio(None, ("stateless", "one"), ("mlserver", "one")),
    Ratio(None, ("stateless", "one"), ("ceiling", "one")),
    Ratio(None, ("embedded", "one"), ("stateless", "one")),
    Ratio(None, ("embedded", "columns"), ("stateless", "columns")),
    Ratio(None, ("redis", "columns"), ("stateless", "columns")),
    Ratio(None, ("embedded", "stream"), ("ceiling", "stream")),
    Ratio(None, (OURS_DEFAULT, "one"), ("peer", "one")),
    Ratio(None, (OURS_DEFAULT, "batch"), ("peer", "batch")),
    Ratio(None, (OURS_DEFAULT, "columns"), ("peer", "columns")),
    Ratio(None, ("mlserver", "batch"), ("ceiling", "batch")),
)

BOUNDS = (
    Bound(HISTORY, "embedded", "stream", "p99_ms", 15.0, "ms"),
    Bound(HISTORY, "redis", "stream", "p99_ms", 15.0, "ms"),
    Bound(PEER, OURS_DEFAULT, "one", "p99_ms", 10.0, "ms"),
    Bound(PEER, OURS_DEFAULT, None, "cold_start_s", 3.0, "s"),
    Bound(PEER, OURS_DEFAULT, None, "max_worker_rss_mb", 200.0, "MB"),
)


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target (and context ratio) with its measured value; skipped when a side was not
    run (a --servers subset)."""
    by_round: dict[tuple[str, str], dict[int, dict]] = {}
    for run in results["runs"]:
        by_round.setdefault((run["server"], run["shape"]), {})[run["round"]] = run
    judged = []
    for ratio in RATIOS:
        top, bottom = by_round.get(ratio.numerator, {}), by_round.get(ratio.denominator, {})
        rounds = sorted(set(top) & set(bottom))
        if not rounds:
            continue
        values = [top[r]["requests_per_s"] / bottom[r]["requests_per_s"] for r in rounds]
        value = statistics.median(values)
        judged.append(
            {
                "issue": ratio.issue,
                "label": f"{_side(ratio.numerator)} ÷ {_side(ratio.denominator)}",
                "kind": "ratio",
                "value": value,
                "per_round": values,
                "target": ratio.at_least,
                "ok": None if ratio.at_least is None else value >= ratio.at_least,
            }
        )
    for bound in BOUNDS:
        if bound.shape is None:
            server = results["servers"].get(bound.server)
            if server is None:
                continue
            value, values = server[bound.metric], None
            label = f"{bound.metric.replace('_', ' ')} ({bound.server})"
        else:
            runs = by_round.get((bound.server, bound.shape), {})
            if not runs:
                continue
            values = [runs[r][bound.metric] for r in sorted(runs)]
            value = statistics.median(values)
            label = f"p99 {_side((bound.server, bound.shape))}"
        judged.append(
            {
                "issue": bound.issue,
                "label": label,
                "kind": "at_most",
                "unit": bound.unit,
                "value": value,
                "per_round": values,
                "target": bound.at_most,
                "ok": value <= bound.at_most,
            }
        )
    return judged


def _side(side: tuple[str, str]) -> str:
    server, shape = side
    return f"{shape} ({server})"
