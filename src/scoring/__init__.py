"""Batch scoring and backtests: every reading of a fleet's files, scored by one run.

`batch.score_telemetry` scores on one machine, `spark.SparkScorer` on Apache Spark (an
extra: pyspark is in requirements-dev.txt only), both through `PredictionService.predict`
with each module's whole series as its history, so the scores are those `/predict` gives
when the same readings are posted in order. `report.backtest_report` judges them against
an incident log with training's own metrics. The CLI is `python -m src.scoring`.
"""

from src.scoring.batch import load_scoring_service, score_telemetry, write_scores
from src.scoring.report import backtest_report

__all__ = ["backtest_report", "load_scoring_service", "score_telemetry", "write_scores"]
