"""`python -m src.training.runs latest`: the newest finished run of this project, or nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from src.services.model_store import configure_mlflow_environment
from src.training.tracking import DEFAULT_EXPERIMENT


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
    parser.add_argument("command", choices=["latest"])
    parser.add_argument("--mlruns-dir", type=Path, default=Path("mlruns"))
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    args = parser.parse_args(argv)
    run_id = latest_run_id(args.mlruns_dir, args.experiment)
    if run_id:
        sys.stdout.write(f"{run_id}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
