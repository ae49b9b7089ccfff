"""Writes the Grafana dashboard hvs.json from panels.yml beside it; hvs.json is generated.

    .venv/bin/python monitoring/dashboards/generate.py           # rewrite hvs.json
    .venv/bin/python monitoring/dashboards/generate.py --check   # exit 1 if it is not current

Import hvs.json in Grafana (Dashboards > New > Import) and pick the Prometheus data source.
Every query selects `job="$job", instance=~"$instance"`; tests/test_monitoring.py parses
each one and checks that every metric it names is one the service exports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "panels.yml"
OUTPUT = HERE / "hvs.json"
SELECTOR = 'job="$job", instance=~"$instance"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def expand(expr: str) -> str:
    return expr.replace("$sel", SELECTOR).replace("$rate", "$__rate_interval")


def target(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    instant = bool(spec.get("instant", False))
    return {
        "datasource": DATASOURCE,
        "expr": expand(spec["expr"]),
        "legendFormat": spec.get("legend", ""),
        "refId": ref,
        "instant": instant,
        "range": not instant,
    }


def panel(spec: dict[str, Any]) -> dict[str, Any]:
    x, y, w, h = spec["grid"]
    defaults: dict[str, Any] = {"unit": spec.get("unit", "short")}
    if "thresholds" in spec:
        steps = [{"value": value, "color": color} for value, color in spec["thresholds"]]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    return {
        "type": spec["type"],
        "title": spec["title"],
        "description": spec.get("description", ""),
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": spec.get("options", {}),
        "targets": [target(t, chr(ord("A") + i)) for i, t in enumerate(spec["targets"])],
    }


def panels(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        top = min(p["grid"][1] for p in row["panels"]) - 1
        out.append(
            {
                "type": "row",
                "title": row["row"],
                "collapsed": False,
                "gridPos": {"x": 0, "y": top, "w": 24, "h": 1},
                "panels": [],
            }
        )
        out += [panel(spec) for spec in row["panels"]]
    for number, each in enumerate(out, start=1):
        each["id"] = number
    return out


def variables() -> list[dict[str, Any]]:
    instances = 'label_values(up{job="$job"}, instance)'
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        {
            "name": "job",
            "label": "job",
            "type": "custom",
            "query": "hvs-prediction-api",
            "current": {"text": "hvs-prediction-api", "value": "hvs-prediction-api"},
            "options": [],
            "hide": 0,
        },
        {
            "name": "instance",
            "label": "instance",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": instances, "refId": "instance"},
            "definition": instances,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "refresh": 2,
            "current": {"text": "All", "value": "$__all"},
            "hide": 0,
        },
    ]


def dashboard() -> dict[str, Any]:
    rows = yaml.safe_load(SOURCE.read_text())["rows"]
    return {
        "title": "HVS prediction service",
        "uid": "hvs-prediction-api",
        "description": "Thermal-runaway early warning: is it watching, what it sees, how it serves",
        "tags": ["hvs", "battery", "thermal-runaway"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "panels": panels(rows),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if hvs.json is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is not what panels.yml makes: run generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
