# syntax=docker/dockerfile:1
# One image for the API, the worker, the migration hook and the helm test pod.
#   API (default):  uvicorn service.app:create_app --factory --host 0.0.0.0 --port 8000
#   worker:         python -m worker
#   migrations:     memstack migrate
# Base image: any Debian bookworm image with Python 3.11 whose `python` has venv and pip; the
# default is the official one. `make image` passes a local one built from Debian packages.
# Runs as the numeric non-root user 10001 on a read-only root filesystem: the only writable
# path is /tmp (an emptyDir in Kubernetes). No health check here: Kubernetes probes the pods.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# pip reads these as settings. Empty (the default) changes nothing: pip uses its index. An
# offline build (`make image`) passes PIP_NO_INDEX=1 and PIP_FIND_LINKS=/wheels, with a
# wheelhouse mounted there for the build only.
ARG PIP_NO_INDEX=""
ARG PIP_FIND_LINKS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (cached while only the code changes), then the package itself.
COPY pyproject.toml README.md ./
COPY service ./service
COPY worker ./worker
RUN pip install --no-cache-dir . \
    && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="memstack" \
      org.opencontainers.image.description="MemStack AI-memory service: API, worker and migrations" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache
RUN groupadd --system --gid 10001 memstack \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin memstack
COPY --from=builder /opt/venv /opt/venv
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 9090
CMD ["uvicorn", "service.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
