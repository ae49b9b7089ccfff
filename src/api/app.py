"""Development server: `python src/api/app.py` serves on port 5001 with Flask's server.

Production runs gunicorn with src/api/gunicorn_conf.py instead (see the README).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, Python puts src/api/ on the path, not the project root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from src.api import create_app
    from src.settings import ServiceSettings

    settings = ServiceSettings(HVS_LOG_FORMAT=os.environ.get("HVS_LOG_FORMAT", "text"))
    create_app(settings).run(host="0.0.0.0", port=int(os.environ.get("PORT", "5001")))
