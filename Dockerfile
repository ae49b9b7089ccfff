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
# at start), the front's run folder (nginx's config, temporary files and gunicorn's unix
# socket), and $HOME if a library ever writes there (gunicorn's control socket is off, so
# is MLflow's telemetry). HVS_FRONT=nginx: the image has nginx, so never fall back.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    BEST_MLFLOW_RUN_ID="RUN_ID_NOT_SET" \
    MLFLOW_TRACKING_URI=file:///app/mlruns \
    MLFLOW_ALLOW_FILE_STORE=true \
    MLFLOW_DISABLE_TELEMETRY=true \
    PROMETHEUS_MULTIPROC_DIR=/tmp/hvs-prometheus \
    HVS_LOG_FORMAT=json \
    HVS_FRONT=nginx

# nginx, the front before the sync workers (src/api/front.py; docs/container.md, "Slow
# clients"): Debian's package, no recommends (7 MB with iproute2, which it depends on).
# apt's lists and caches go in the same layer: the caches alone were 80 MB where the base
# image does not turn them off (the CI's stand-in). No version pin: a pinned Debian
# version stops resolving whenever the base image's release moves (python:3.11-slim is
# Debian 13, the stand-in Debian 12); the Python requirements are pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

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
# waits for; asked on the public port, so through nginx. Liveness is /health, for
# Kubernetes' own probe. urllib: the image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '5001') + '/ready', timeout=4)"]

# Exec form: the front's supervisor (src/api/front.py) is PID 1 and receives `docker
# stop`'s SIGTERM itself: gunicorn drains (src/api/drain.py), then nginx stops, then
# gunicorn; exit 0. It exits non-zero when nginx or gunicorn dies, so the container restarts.
CMD ["python", "-m", "src.api.front"]
