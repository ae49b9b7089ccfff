"""`python -m src.training.runs`: the newest finished run of this project (`latest`), and
the model registry's two operations an operator needs: `register` a run as a new version
(optionally moving an alias to it) and `set-alias` (switch or roll back what
MODEL_URI=models:/<name>@<alias> serves)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from src.services.model_store import configure_mlflow_environment
from src.training.tracking import DEFAULT_EXPERIMENT, register_model, set_alias


def latest_run_id(mlruns_dir: Path, experiment: str = DEFAULT_EXPERIMENT) -> str | None:
    if not mlruns_dir.is_dir():
        return None
    configure_mlflow_environment()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlruns_dir.resolve().as_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.training.runs")
    commands = parser.add_subparsers(dest="command", required=True)
    latest = commands.add_parser("latest", help="print the newest finished run's id")
    latest.add_argument("--mlruns-dir", type=Path, default=Path("mlruns"))
    latest.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    register = commands.add_parser("register", help="register a run; print the new version")
    register.add_argument("run_id")
    register.add_argument("--name", required=True, help="registered model, e.g. hvs")
    register.add_argument("--alias", help="point this alias at the new version")
    alias = commands.add_parser("set-alias", help="point an alias at a version")
    alias.add_argument("--name", required=True)
    alias.add_argument("--alias", required=True)
    alias.add_argument("--version", required=True)
    for command in (register, alias):
        command.add_argument(
            "--tracking-uri",
            default=os.environ.get("MLFLOW_TRACKING_URI", "mlruns"),
            help="the store or server (default: MLFLOW_TRACKING_URI, else ./mlruns)",
        )
    args = parser.parse_args(argv)
    if args.command == "latest":
        run_id = latest_run_id(args.mlruns_dir, args.experiment)
        if run_id:
            sys.stdout.write(f"{run_id}\n")
        return 0
    from mlflow.exceptions import MlflowException

    tracking_uri = _as_uri(args.tracking_uri)
    try:
        if args.command == "register":
            version = register_model(tracking_uri, args.run_id, args.name, args.alias)
            sys.stdout.write(f"{version}\n")
        else:
            set_alias(tracking_uri, args.name, args.alias, args.version)
    except (MlflowException, ValueError) as error:
        sys.exit(f"{args.command} failed in {tracking_uri}: {getattr(error, 'message', error)}")
    return 0


def _as_uri(tracking_uri: str) -> str:
    """A plain path as a file URI (what MLflow's file store wants); URIs unchanged."""
    return tracking_uri if "://" in tracking_uri else Path(tracking_uri).resolve().as_uri()


if __name__ == "__main__":
    sys.exit(main())
