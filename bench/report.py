"""The benchmark's results as markdown: what run_bench.py prints and writes."""

from __future__ import annotations

from typing import Any

SERVER_NAMES = {"ours": "ours", "peer": "mlflow models serve"}


def markdown(results: dict[str, Any]) -> str:
    machine, load, titles = results["machine"], results["load"], results["shapes"]
    lines = [
        f"### Benchmark {results['date']}",
        "",
        f"{machine['cpu']}, {machine['cores']} cores; `{results['command']}`; "
        f"code {results['code']}; wrk -t1 -c{load['connections']} -d{load['duration_s']}s "
        f"on loopback after {load['warmup_s']} s of warm-up; {load['workers']} workers each "
        f"(the peer's with {load.get('peer_omp_threads', '1')} OpenMP thread(s), ours with 1, "
        f"ours from a venv of {load.get('ours_venv', 'development')}); "
        f"other processes used {machine.get('background_cores_before', 0):.2f} cores just "
        "before the servers started.",
        "",
        "| server | shape | requests/s | p50 ms | p99 ms | errors "
        "| CPU cores: server (per worker) / wrk / other |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in results["runs"]:
        cpu = row["cpu_cores"]
        per_worker = " + ".join(f"{cores:.2f}" for cores in cpu["per_worker"])
        lines.append(
            f"| {SERVER_NAMES[row['server']]} | {titles[row['shape']]} "
            f"| {row['requests_per_s']:,.1f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
            f"| {row['errors']} | {cpu['server']:.2f} ({per_worker}) / {cpu['wrk']:.2f} "
            f"/ {cpu['other']:.2f} |"
        )
    lines += ["", "| shape | ours ÷ peer, requests/s | peer p99 ÷ ours p99 |", "|---|---:|---:|"]
    for shape, ratio in results["ratios"].items():
        lines.append(
            f"| {titles[shape]} | **{ratio['requests_per_s']:.1f}×** "
            f"| {ratio['p99_latency']:.1f}× |"
        )
    lines += [
        "",
        "| server | worker | cold start to ready | RSS per worker after load "
        "| threads per worker |",
        "|---|---|---:|---:|---:|",
    ]
    for side, server in results["servers"].items():
        each = ", ".join(f"{mb:.0f}" for mb in server["worker_rss_mb"])
        lines.append(
            f"| {SERVER_NAMES[side]} | {server['worker_class']} "
            f"| {server['cold_start_s']:.2f} s | {each} MB "
            f"(all processes: {server['tree_rss_mb']:.0f} MB) "
            f"| {', '.join(map(str, server['worker_threads']))} |"
        )
    lines += [
        "",
        "In-process limit: orjson.loads + arrays + the service's features, affine scale and "
        "predict (ONNX for <= 64 readings, XGBoost above), "
        "one thread, no HTTP, median CPU time per request; "
        f"limit = {load['workers']} workers ÷ that time.",
        "",
        "| shape | in-process CPU µs/request | limit requests/s | ours, % of limit "
        "| peer, % of limit |",
        "|---|---:|---:|---:|---:|",
    ]
    for shape, limit in results["inprocess"].items():
        lines.append(
            f"| {titles[shape]} | {limit['seconds'] * 1e6:,.0f} "
            f"| {limit['limit_requests_per_s']:,.0f} | **{limit['ours_percent']:.0f} %** "
            f"| {limit['peer_percent']:.1f} % |"
        )
    check = results["correctness"]
    lines += [
        "",
        f"Same answers: largest |difference| from the training code's own predictions, over "
        f"every reading of every shape: ours {check['ours_max_abs_diff']:.1e}, "
        f"peer {check['peer_max_abs_diff']:.1e} (tolerance {check['tolerance']:g}).",
        "",
        "Targets (issue 4): "
        + "; ".join(f"{name} {'✔' if ok else '✘'}" for name, ok in results["targets"].items()),
    ]
    busy = max(row["cpu_cores"]["other"] for row in results["runs"])
    if busy >= 0.2:
        lines += [
            "",
            f"Warning: other processes used up to {busy:.2f} of {machine['cores']} cores "
            "during a run; these numbers are lower than on a quiet machine.",
        ]
    return "\n".join(lines) + "\n"


def targets(results: dict[str, Any]) -> dict[str, bool]:
    """Issue 4's targets, as measured in this run (the row formats, not the compact one)."""
    run = {(row["server"], row["shape"]): row for row in results["runs"]}
    ours = results["servers"]["ours"]
    return {
        "1 reading ≥ 20× peer": results["ratios"]["one"]["requests_per_s"] >= 20,
        "1 reading p99 ≤ 15 ms": run[("ours", "one")]["p99_ms"] <= 15,
        "1000 readings ≥ 15× peer": results["ratios"]["batch"]["requests_per_s"] >= 15,
        "≥ 50 % of in-process limit": all(
            results["inprocess"][shape]["ours_percent"] >= 50 for shape in ("one", "batch")
        ),
        "cold start ≤ 3 s": ours["cold_start_s"] <= 3,
        "RSS ≤ 300 MB per worker": max(ours["worker_rss_mb"]) <= 300,
        "same probabilities": results["correctness"]["ok"],
    }
