"""Write docs/configuration.md from the settings' own declarations (names, defaults and
docstrings in src/settings.py), so the table cannot drift from the code.

    .venv/bin/python tools/configuration_doc.py          # rewrite the file
    .venv/bin/python tools/configuration_doc.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from src.settings import RUN_ID_PLACEHOLDER, Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

HEADER = """# Configuration

Environment variables, all fields of one typed object (`src/settings.py`, read once at
start). A bad value stops the start with one line naming the variable and what to do
(exit status 3). Generated from the code by `tools/configuration_doc.py`; edit the
docstrings there, not this file.

| variable | default | meaning |
|---|---|---|
"""


def _default(value: object) -> str:
    if value is None or value == () or value == RUN_ID_PLACEHOLDER:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def markdown() -> str:
    rows = []
    for field in Settings.model_fields.values():
        if not isinstance(field.validation_alias, str):
            continue
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{field.validation_alias}` | `{_default(field.default)}` | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> int:
    text = markdown()
    if "--check" in sys.argv[1:]:
        if DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run tools/configuration_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
