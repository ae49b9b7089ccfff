"""The benchmark's results as markdown: what run_bench.py prints and writes."""

from __future__ import annotations

import statistics
from typing import Any

MLSERVER_INPUTS = (
    "MLServer was given **the engineered, scaled rows**: each shape's readings turned once, "
    "by the service's own `LoadedModel.features` and `LoadedModel.scale`, into the model's "
    "float32 input, sent as one V2 FP32 tensor (the same body for *1000 readings* and "
    "*compact*). So it does no validation, no feature engineering, no scaling, no history "
    "and no prediction metrics: less work than any other server here."
)
BUSY_CORES = 0.2
"""An "other" CPU column above this in any run gets a warning under the tables."""


def markdown(results: dict[str, Any]) -> str:
    machine, load = results["machine"], results["load"]
    lines = [
        f"### Benchmark {results['date']}",
        "",
        f"{machine['cpu']}, {machine['cores']} cores; `{results['command']}`; "
        f"code {results['code']}; {load['rounds']} round(s), every (server, shape) once per "
        f"round, the order rotated between rounds; wrk -t1 -c{load['connections']} "
        f"-d{load['duration_s']}s on loopback after {load['warmup_s']} s of warm-up; "
        f"{load['workers']} workers each, one OpenMP thread each (mlflow's: "
        f"{load.get('peer_omp_threads', '1')}); ours from a venv of {load['ours_venv']}; "
        f"streaming: {load['stream_modules']} modules in turn, {load['stream_step_s']:g} s "
        f"apart per module; other processes used "
        f"{machine.get('background_cores_before', 0):.2f} cores just before the servers "
        "started. Values are medians over the rounds.",
        "",
    ]
    if results.get("mlserver"):
        versions = ", ".join(f"{k} {v}" for k, v in results["mlserver"].items())
        lines += [f"{MLSERVER_INPUTS} ({versions}.)", ""]
    lines += _target_tables(results)
    lines += _shape_tables(results)
    lines += _server_table(results)
    lines += _limit_table(results)
    lines += _correctness(results)
    busy = max((row["cpu_cores"]["other"] for row in results["runs"]), default=0.0)
    if busy >= BUSY_CORES:
        lines += [
            "",
            f"Warning: other processes used up to {busy:.2f} of {machine['cores']} cores "
            'during a run (the "other" column); those runs\' numbers are low.',
        ]
    return "\n".join(lines) + "\n"


def _target_tables(results: dict[str, Any]) -> list[str]:
    lines = []
    judged = results["targets"]
    for issue in dict.fromkeys(t["issue"] for t in judged if t["issue"]):
        lines += [
            f'Targets, issue "{issue}" (ratios of requests/s: median of the per-round ratios):',
            "",
            "| target | measured | per round | |",
            "|---|---:|---|---|",
        ]
        for target in (t for t in judged if t["issue"] == issue):
            lines.append(_target_row(target))
        lines.append("")
    context = [t for t in judged if t["issue"] is None]
    if context:
        lines += ["Other ratios, for context:", "", "| ratio | measured | per round |"]
        lines.append("|---|---:|---|")
        for target in context:
            lines.append(f"| {target['label']} | {target['value']:.2f} | {_rounds(target)} |")
        lines.append("")
    return lines


def _target_row(target: dict[str, Any]) -> str:
    mark = "✔" if target["ok"] else "✘"
    if target["kind"] == "ratio":
        value, wanted = f"{target['value']:.2f}", f"≥ {target['target']:g}"
    else:
        unit = target["unit"]
        value, wanted = f"{target['value']:.2f} {unit}", f"≤ {target['target']:g} {unit}"
    return f"| {target['label']} {wanted} | **{value}** | {_rounds(target)} | {mark} |"


def _rounds(target: dict[str, Any]) -> str:
    values = target.get("per_round")
    return ", ".join(f"{v:.2f}" for v in values) if values else "(once)"


def _shape_tables(results: dict[str, Any]) -> list[str]:
    lines = []
    names = {key: server["name"] for key, server in results["servers"].items()}
    for shape, title in results["shapes"].items():
        rows = [run for run in results["runs"] if run["shape"] == shape]
        if not rows:
            continue
        lines += [
            f"**{title}**",
            "",
            "| server | requests/s | (rounds) | p50 ms | p99 ms | errors "
            "| CPU cores: server (workers + front) / wrk / redis / idle servers / other |",
            "|---|---:|---|---:|---:|---:|---|",
        ]
        for key in dict.fromkeys(run["server"] for run in rows):
            mine = [run for run in rows if run["server"] == key]
            lines.append(_shape_row(names.get(key, key), mine))
        lines.append("")
    return lines


def _shape_row(name: str, runs: list[dict[str, Any]]) -> str:
    def median(field: str) -> float:
        return statistics.median(run[field] for run in runs)

    def cores(field: str) -> float:
        return statistics.median(run["cpu_cores"].get(field, 0.0) for run in runs)

    per_worker = [
        statistics.median(values)
        for values in zip(*(run["cpu_cores"]["per_worker"] for run in runs), strict=False)
    ]
    each = " + ".join(f"{c:.2f}" for c in per_worker)
    rounds = ", ".join(f"{run['requests_per_s']:,.0f}" for run in runs)
    redis = f"{cores('redis'):.2f}" if "redis" in runs[0]["cpu_cores"] else "-"
    return (
        f"| {name} | {median('requests_per_s'):,.1f} | {rounds} | {median('p50_ms'):.2f} "
        f"| {median('p99_ms'):.2f} | {sum(run['errors'] for run in runs)} "
        f"| {cores('server'):.2f} ({each} + {cores('front'):.2f}) / {cores('wrk'):.2f} "
        f"/ {redis} / {cores('idle_servers'):.2f} / {cores('other'):.2f} |"
    )


def _server_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| server | worker | cold start to ready | RSS per worker after load | front process "
        "| all processes | threads per worker |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for server in results["servers"].values():
        each = ", ".join(f"{mb:.0f}" for mb in server["worker_rss_mb"]) or "-"
        lines.append(
            f"| {server['name']} | {server['worker_class']} | {server['cold_start_s']:.2f} s "
            f"| {each} MB | {server['front_rss_mb']:.0f} MB | {server['tree_rss_mb']:.0f} MB "
            f"| {', '.join(map(str, server['worker_threads'])) or '-'} |"
        )
    return [
        *lines,
        "",
        "Front process: gunicorn's or uvicorn's master (idle), MLServer's HTTP server (which "
        "parses every request and hands it to a worker).",
        "",
    ]


def _limit_table(results: dict[str, Any]) -> list[str]:
    rounds = results["inprocess"]
    if not rounds:
        return []
    workers = results["load"]["workers"]
    ours = [key for key in ("stateless", "embedded") if key in results["servers"]]
    lines = [
        "In-process limit: orjson.loads + arrays + the service's features, affine scale and "
        "predict (ONNX for few readings, XGBoost above), one thread, no HTTP, median CPU time "
        f"per request, timed at the start of each round; limit = {workers} workers ÷ that time.",
        "",
        "| shape | in-process CPU µs/request | limit requests/s "
        + "".join(f"| {key}, % of limit " for key in ours)
        + "|",
        "|---|---:|---:" + "|---:" * len(ours) + "|",
    ]
    for shape in next(iter(rounds.values())):
        seconds = statistics.median(limits[shape] for limits in rounds.values())
        limit = workers / seconds
        cells = ""
        for key in ours:
            rps = [
                r["requests_per_s"]
                for r in results["runs"]
                if (r["server"], r["shape"]) == (key, shape)
            ]
            cells += f"| {100 * statistics.median(rps) / limit:.0f} % " if rps else "| - "
        title = results["shapes"].get(shape, shape)
        lines.append(f"| {title} | {seconds * 1e6:,.0f} | {limit:,.0f} {cells}|")
    return [*lines, ""]


def _correctness(results: dict[str, Any]) -> list[str]:
    check = results["correctness"]
    diffs = ", ".join(f"{key} {diff:.1e}" for key, diff in check["max_abs_diff"].items())
    streams = "; ".join(
        f"{key}: history_readings {s['history_readings']}, {s['history_source']}, "
        f"|difference| {s['abs_diff']:.1e}"
        for key, s in check["stream"].items()
    )
    lines = [
        f"Same answers: largest |difference| from the training code's own probabilities over "
        f"every reading of every shape: {diffs} (tolerance {check['tolerance']:g}; MLServer's "
        "for the engineered rows of the same readings)."
    ]
    if streams:
        lines.append(
            f"Streaming check (a module's 4th reading posted alone, against the training code "
            f"on all 4): {streams}."
        )
    if "ceiling_answers_empty" in check:
        lines.append(
            f"Ceiling answers `{{}}`: {'yes' if check['ceiling_answers_empty'] else 'no'}."
        )
    return lines
