# syntax=docker/dockerfile:1.7
# Kepler Station: dependencies from uv.lock into a venv (builder), then a slim runtime that
# holds only Python, the venv, the code, the course and the pinned vcluster values, and runs
# as an unprivileged user. No kubectl or helm: sandboxes are server-side applied through the
# Python client. Operator guide: docs/operating.md.

ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- builder ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Dependencies alone first: this layer is rebuilt only when the lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project

# Then the project (installed editable into the venv, pointing at /app in both stages).
COPY pyproject.toml uv.lock README.md ./
COPY bot ./bot
COPY sandbox ./sandbox
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
 && python -m compileall -q bot sandbox

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 kepler \
 && useradd --system --uid 10001 --gid kepler --home-dir /home/kepler --create-home \
        --shell /usr/sbin/nologin kepler \
 && mkdir -p /data /home/kepler/.kube \
 && chown kepler:kepler /data /home/kepler/.kube \
 && chmod 0700 /home/kepler/.kube

# The pinned vcluster chart's values.yaml (sandbox/provision.py: VCLUSTER_VERSION, VALUES_SHA256),
# baked in so a start never depends on GitHub. tests/ops/test_deploy_files.py keeps it in step.
ADD --chmod=0644 \
    --checksum=sha256:348c20ef91c87b9df1759a03d8ba0167e0a509b87ac0ba8bf45ee8df955dad5d \
    https://raw.githubusercontent.com/loft-sh/vcluster/v0.26.5/chart/values.yaml \
    /opt/kepler/vcluster-0.26.5-values.yaml

WORKDIR /app
# Code and content stay root-owned and read-only to the bot.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/bot /app/bot
COPY --from=builder /app/sandbox /app/sandbox
COPY --from=builder /app/pyproject.toml /app/README.md /app/
COPY chapters /app/chapters
COPY personas /app/personas

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEPLER_DB=/data/kepler.db \
    KEPLER_CHAPTERS=/app/chapters \
    KEPLER_PERSONAS=/app/personas \
    KEPLER_VCLUSTER_VALUES=/opt/kepler/vcluster-0.26.5-values.yaml \
    KEPLER_HEALTH_PORT=9090 \
    KEPLER_LOG_FORMAT=json

USER 10001:10001
EXPOSE 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9090/livez', timeout=4)"]

# Writes HOST_KUBECONFIG_DATA to a 0600 file, takes a pre-start backup, then execs `kepler serve`.
ENTRYPOINT ["python", "-m", "bot.ops.entrypoint"]
CMD ["serve"]
