# The prediction service's image. Build, run, sizes and the CI test: docs/container.md.
#
#   docker build -t hvs-prediction-api:latest .
#   docker run -p 5001:5001 -e BEST_MLFLOW_RUN_ID="<run id>" -v "$PWD/mlruns:/app/mlruns" \
#     --name hvs-api hvs-prediction-api:latest
#
# One stage on purpose: every requirement installs from a prebuilt wheel, so a build stage
# would hold nothing the runtime does not. Measured (docs/container.md): a venv built in a
# second stage and copied over made the image 23 MB larger and the build 35 s slower.

FROM python:3.11-slim

# Every write goes under /tmp, the one path to keep writable under a read-only root
# filesystem (a tmpfs): the Prometheus multiprocess folder (gunicorn creates and empties it
# at start), and $HOME if a library ever writes there (gunicorn's control socket is off,
# so is MLflow's telemetry).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    BEST_MLFLOW_RUN_ID="RUN_ID_NOT_SET" \
    MLFLOW_TRACKING_URI=file:///app/mlruns \
    MLFLOW_ALLOW_FILE_STORE=true \
    MLFLOW_DISABLE_TELEMETRY=true \
    PROMETHEUS_MULTIPROC_DIR=/tmp/hvs-prometheus \
    HVS_LOG_FORMAT=json

# A fixed numeric id, so Kubernetes' runAsNonRoot can check it. The user owns nothing in
# the image: the code and the installed packages stay root's.
RUN groupadd --gid 10001 hvs \
    && useradd --uid 10001 --gid hvs --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin hvs

WORKDIR /app

# Requirements before the source, so editing src/ reuses this slow layer. pip compiles
# the packages' bytecode here, once: at run time nothing may write it.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY ./src ./src

USER 10001:10001
EXPOSE 5001

# Healthy means ready (model loaded, warm-up prediction done): what `docker compose`
# waits for. Liveness is /health, for Kubernetes' own probe. urllib: the image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '5001') + '/ready', timeout=4)"]

# Exec form: gunicorn's master (src/api/server.py runs it in-process) is PID 1 and
# receives `docker stop`'s SIGTERM itself, then drains (src/api/drain.py) and exits 0.
CMD ["python", "-m", "src.api.server"]
