"""Development server: `python -m src.api.app` serves on $PORT (5001) with Flask's server.

Production runs gunicorn instead: `python -m src.api.server` (src/api/server.py).
"""

from __future__ import annotations

if __name__ == "__main__":
    from src.api import create_app
    from src.logging_setup import exit_on_startup_failure
    from src.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        exit_on_startup_failure(str(error))
    create_app(settings).run(host=settings.host, port=settings.port)
