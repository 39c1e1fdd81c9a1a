# syntax=docker/dockerfile:1
# TTG worker image.
#
#   docker buildx build --load --provenance=false --sbom=false -t ttg-worker:dev .
#   kind load docker-image ttg-worker:dev --name ttg
#
# BuildKit (buildx) is required: the runtime stage uses RUN --mount. The attestations are left
# out because with Docker's containerd image store (the default on fresh installs and Docker
# Desktop) a provenance attestation makes `kind load` fail ("content digest ... not found",
# kind#3795). `python -m ttg_lib.cluster.kind up` and scripts/kind-e2e.sh build it this way.
#
# Stage 1 builds a wheel of the project and wheels of the worker's dependencies: the `worker`
# extra of pyproject.toml (redis with hiredis, pika, click, numpy, PyYAML, cloudpickle and
# theirs), not the orchestrator's (pyarrow writes results.parquet, pandas reads it back, rich
# draws the progress bar: workers do neither). Stage 2 installs tini from Debian, then the
# wheels offline (no index): no compiler, no build tools, no project sources in the final image.
#
# The worker runs under tini (Debian's package), an init that forwards SIGTERM and reaps
# children: a process that is PID 1 of its namespace cannot SIGKILL itself (the kernel drops
# it), so TTG_KILL_ON_SIGTERM ends the worker with os._exit(137) in any case (ttg_lib/cluster/
# hardkill.py), and tini keeps it from being PID 1 at all. The Kubernetes manifest's `command`
# replaces ENTRYPOINT, so k8s/base/worker-deployment.yaml names tini too.

ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# pyproject.toml names README.md as the package's readme: the build needs it.
COPY pyproject.toml README.md ./
COPY ttg_lib ./ttg_lib
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))\
['project']['optional-dependencies']['worker']))" > /wheels/worker-requirements.txt \
 && pip wheel --wheel-dir /wheels -r /wheels/worker-requirements.txt

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ttg-worker" \
      org.opencontainers.image.description="TTG parameter-sweep worker (python -m ttg_lib.worker)" \
      org.opencontainers.image.licenses="MIT" \
      app.kubernetes.io/part-of="ttg" \
      app.kubernetes.io/component="worker"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TTG_HEARTBEAT_FILE=/tmp/ttg/heartbeat
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 ttg \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/ttg --create-home \
      --shell /usr/sbin/nologin ttg
# Byte-code is compiled at install time, so the package runs from a read-only root filesystem.
# The project without its own dependency list (that one is the orchestrator's), then the
# worker extra; the check fails the build if an entry point is missing or pyarrow came in.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels --no-deps /wheels/ttg-*.whl \
 && pip install --no-index --find-links /wheels -r /wheels/worker-requirements.txt \
 && python -c "import importlib.util as u, sys; \
sys.exit(0 if all(u.find_spec(m) for m in ('ttg_lib.worker', 'ttg_lib.health', \
'ttg_lib.cluster.check')) and not u.find_spec('pyarrow') else 1)"
USER 10001:10001
WORKDIR /home/ttg
# Same check as the Kubernetes liveness probe (k8s/base/worker-deployment.yaml): the limit is
# TTG_LIVENESS_S (a run sets its --liveness-s in the worker ConfigMap), else 15 s.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "ttg_lib.health", "--file", "/tmp/ttg/heartbeat"]
ENTRYPOINT ["tini", "--", "python", "-m", "ttg_lib.worker"]
