"""The README's facts that code can check: the signal table and the commands it names."""

from __future__ import annotations

import re
from pathlib import Path

from src.data.signals import signal_table_markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_signal_table_matches_signals_py():
    api = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- signal-table:start -->\n(.*?)\n<!-- signal-table:end -->", api, re.S)
    assert table is not None
    assert table.group(1) == signal_table_markdown()


def test_every_make_target_the_readme_names_exists():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.M))
    for named in set(re.findall(r"`make ([a-z-]+)", README)) | set(
        re.findall(r"^    make ([a-z-]+)$", README, re.M)
    ):
        assert named in targets, named


def test_the_layout_lists_only_paths_that_exist():
    layout = README.split("## Layout", 1)[1]
    root = Path(__file__).resolve().parents[1]
    paths = re.findall(r"(?:^|\s)((?:src|tests|tools|bench|docs)/[\w/.]*)", layout)
    assert len(paths) >= 10, paths
    missing = [path for path in paths if not (root / path.rstrip(",")).exists()]
    assert not missing, missing


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 200


def test_the_configuration_doc_is_the_settings_own():
    """docs/configuration.md is generated from src/settings.py: regenerate it after a change
    (`.venv/bin/python tools/configuration_doc.py`)."""
    from tools.configuration_doc import DOC, markdown

    assert DOC.read_text(encoding="utf-8") == markdown()
