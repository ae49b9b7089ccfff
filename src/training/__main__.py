"""`python -m src.training`: train a model on simulated telemetry, or on a site's own
files, and log it to MLflow.

    python -m src.training [--small]                                   # the simulator
    python -m src.training --telemetry site/telemetry --events site/events.csv \
        [--mix-simulated] [--small]                                    # your own data

With --telemetry the files are checked before anything is trained (every problem is
printed, naming file, row and column), their data report is printed and logged with the
run, and too little data is refused with what is missing (docs/own-data.md).

The run id is the last line of standard output, alone, so scripts can take it with
`tail -n 1`; progress bars and logs go to standard error. Exit status: 0 trained; 1 a
signing key or argument problem; 2 the files cannot be used or are too few.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from src.data.signals import SIGNAL_NAMES
from src.data.telemetry_files import TelemetryValidationError
from src.data.telemetry_report import format_report
from src.errors import ModelLoadError
from src.model_artifacts import read_signing_key
from src.training.config import TrainingConfig, small_config
from src.training.files import (
    NotEnoughDataError,
    format_splits,
    read_own_data,
    train_on_own_data,
)
from src.training.tracking import DEFAULT_EXPERIMENT, log_run, register_model
from src.training.train import train

logger = logging.getLogger("src.training")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.training", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--mlruns-dir",
        type=Path,
        default=Path("mlruns"),
        help="MLflow file store to log into (default: ./mlruns)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="log to this MLflow store or tracking server (http://host:5000) instead of "
        "--mlruns-dir",
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument(
        "--register",
        metavar="NAME",
        help="register the run's model as a new version of this registered model "
        "(served with MODEL_URI=models:/NAME/<version> or models:/NAME@<alias>)",
    )
    parser.add_argument(
        "--alias",
        help="with --register: point this alias (e.g. champion) at the new version",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="a small data set that trains in seconds (tests, CI, trying things out)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for data, split and model")
    parser.add_argument(
        "--absent-signals",
        default="",
        metavar="NAME,NAME",
        help="signals the site has no sensor for: trained and judged without them (the "
        "service's HVS_ABSENT_SIGNALS must then be the same)",
    )
    parser.add_argument(
        "--no-holdout",
        action="store_true",
        help="skip the leave-one-family-out runs (one more model per fault kind and chemistry)",
    )
    parser.add_argument(
        "--telemetry",
        type=Path,
        metavar="PATH",
        help="train on this site's telemetry: a CSV/Parquet file or a folder of them "
        "(docs/own-data.md); needs --events",
    )
    parser.add_argument(
        "--events",
        type=Path,
        metavar="PATH",
        help="the site's incident log (module_id, onset[, fault_type, event_id]), with --telemetry",
    )
    parser.add_argument(
        "--mix-simulated",
        action="store_true",
        help="with --telemetry: add simulated sites (the --small or default site) to training "
        "and validation; the test split stays the site's own",
    )
    parser.add_argument(
        "--signing-key-file",
        type=Path,
        help="sign the run's manifest with this key (HMAC-SHA256): a service given the same "
        "key (HVS_MODEL_SIGNING_KEY_FILE) serves only runs signed with it",
    )
    return parser.parse_args(argv)


class _Bars:
    """One tqdm bar per stage, on standard error."""

    def __init__(self) -> None:
        self._bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(
                total=total,
                desc=f"{stage:>8}",
                unit="" if stage == "fit" else " modules",
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


HEADLINE = (
    ("warning threshold", "warning_threshold", "{:.4f}"),
    ("alarm threshold", "alarm_threshold", "{:.4f}"),
    ("validation healthy module-hours", "validation_healthy_module_hours", "{:.0f}"),
    ("events (test)", "test_warning_events", "{:.0f}"),
    ("warned >= 5 min (warning)", "test_warning_events_warned_5min_fraction", "{:.0%}"),
    ("warned >= 10 min (warning)", "test_warning_events_warned_10min_fraction", "{:.0%}"),
    ("median lead, min (warning)", "test_warning_lead_time_min_median", "{:.1f}"),
    ("warned >= 5 min (alarm)", "test_alarm_events_warned_5min_fraction", "{:.0%}"),
    ("false alarms / 1,000 h (warning)", "test_warning_false_alarms_per_1000h", "{:.2f}"),
    ("false alarms / 1,000 h (alarm)", "test_alarm_false_alarms_per_1000h", "{:.2f}"),
    ("widened set: warned >= 5 min", "widened_warning_events_warned_5min_fraction", "{:.0%}"),
    (
        "cold start (no history): >= 5 min",
        "test_history_0min_warning_events_warned_5min_fraction",
        "{:.0%}",
    ),
)


def headline(metrics: dict[str, float]) -> str:
    """The numbers a reviewer asks for first, one per line."""
    lines = [
        f"  {label:<38} {pattern.format(metrics[key])}"
        for label, key, pattern in HEADLINE
        if key in metrics
    ]
    held = sorted(
        (key.split("/")[2], value)
        for key, value in metrics.items()
        if key.startswith("holdout/") and key.endswith("/warning_events_warned_5min_fraction")
    )
    if held:
        lines.append(
            "  left out of training, warned >= 5 min: "
            + ", ".join(f"{name} {value:.0%}" for name, value in held)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.alias and not args.register:
        sys.exit("--alias needs --register NAME: an alias belongs to a registered model")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    config = small_config() if args.small else TrainingConfig()
    if args.seed is not None:
        config = replace(
            config, seed=args.seed, simulation=replace(config.simulation, seed=args.seed)
        )
    absent = tuple(sorted({n.strip() for n in args.absent_signals.split(",") if n.strip()}))
    unknown = [name for name in absent if name not in SIGNAL_NAMES]
    if unknown:
        sys.exit(
            f"--absent-signals names {', '.join(unknown)}: not signals ({', '.join(SIGNAL_NAMES)})"
        )
    config = replace(config, absent_signals=absent, holdout=config.holdout and not args.no_holdout)
    problem = _file_arguments_problem(args)
    if problem:
        sys.stderr.write(f"python -m src.training: {problem}\n")
        return 2
    if args.tracking_uri:
        tracking_uri = args.tracking_uri
    else:
        mlruns = args.mlruns_dir.expanduser().resolve()
        mlruns.mkdir(parents=True, exist_ok=True)
        tracking_uri = mlruns.as_uri()
    data = None
    bars = _Bars()
    try:
        if args.telemetry is None:
            logger.info(
                "training %s model into %s",
                "a small" if args.small else "the default",
                tracking_uri,
            )
            result = train(config, progress=bars)
        else:
            started = time.perf_counter()
            try:
                own = read_own_data(args.telemetry, args.events, config.label_horizon_s)
                read = time.perf_counter()
                logger.info("data report:\n%s", format_report(own.report))
                result, data = train_on_own_data(own, config, args.mix_simulated, bars)
            except (TelemetryValidationError, NotEnoughDataError) as error:
                sys.stderr.write(f"{error}\n")
                return 2
            done = time.perf_counter()
            readings = own.report["readings"]
            logger.info(
                "%s\nread and checked %s readings in %.1f s (%s/s); trained on %s in %.1f s "
                "(%s readings of the site's files/s)",
                format_splits(data["report"]["splits"]),
                f"{readings:,}",
                read - started,
                f"{readings / (read - started):,.0f}",
                data["params"]["data.source"],
                done - read,
                f"{readings / (done - read):,.0f}",
            )
    finally:
        bars.close()
    tested_on = "test site" if data is None else "the site's own test modules"
    logger.info("evaluation (%s, never seen):\n%s", tested_on, headline(result.metrics))
    logger.info("logging the run to MLflow at %s", tracking_uri)
    try:
        key = None if args.signing_key_file is None else read_signing_key(args.signing_key_file)
    except ModelLoadError as error:
        sys.exit(error.message)
    run_id = log_run(
        result,
        config,
        tracking_uri=tracking_uri,
        experiment_name=args.experiment,
        signing_key=key,
        data=data,
    )
    logger.info("serve it with: BEST_MLFLOW_RUN_ID=%s make serve", run_id)
    if args.register:
        from mlflow.exceptions import MlflowException

        try:
            version = register_model(tracking_uri, run_id, args.register, args.alias)
        except (MlflowException, ValueError) as error:
            sys.exit(
                f"run {run_id} is logged but registering it as {args.register!r} failed "
                f"({getattr(error, 'message', error)}); once fixed, register it without "
                f"training again: python -m src.training.runs register {run_id} "
                f"--name {args.register}" + (f" --alias {args.alias}" if args.alias else "")
            )
        logger.info(
            "registered as %s version %s%s: serve it with MODEL_URI=models:/%s%s",
            args.register,
            version,
            f" (alias {args.alias})" if args.alias else "",
            args.register,
            f"@{args.alias}" if args.alias else f"/{version}",
        )
    sys.stdout.write(f"{run_id}\n")
    return 0


def _file_arguments_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of --telemetry, --events and --mix-simulated."""
    if args.telemetry is None:
        if args.events is not None:
            return "--events needs --telemetry: pass the site's telemetry files too"
        if args.mix_simulated:
            return "--mix-simulated adds simulated data to --telemetry: pass the site's files"
        return None
    if args.events is None:
        return (
            "--telemetry needs --events: the incident log (module_id, onset) the readings are "
            "labelled from; without incidents there is nothing to learn or to judge a warning "
            "by (docs/own-data.md, Events)"
        )
    for flag, path in (("--telemetry", args.telemetry), ("--events", args.events)):
        if not path.exists():
            return f"{flag} {path}: no such file or folder; give a CSV/Parquet file or a folder"
    return None


if __name__ == "__main__":
    sys.exit(main())
