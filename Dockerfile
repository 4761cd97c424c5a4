# syntax=docker/dockerfile:1
# slicewise container images: one build, two targets.
#   docker build --target exporter -t slicewise-exporter:0.1.0 .   # the DaemonSet's image (the default target)
#   docker build --target advisor  -t slicewise:0.1.0 .            # `slicewise advise|schedule|simulate|demo`
# Dependencies come from PyPI only, as wheels, hash-checked against deploy/docker/*.lock (regenerate them with
# deploy/docker/lock.sh). The base is a fixed Python patch release on Debian trixie; for a reproducible build pin
# its digest too: --build-arg PYTHON_IMAGE=python:3.11.14-slim-trixie@sha256:<digest> (see docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# ---------------------------------------------------------------------------------------------------------------
# wheel: the slicewise wheel, built from this checkout by hatchling installed from its lock. No build isolation,
# so nothing unpinned is fetched; /opt/build (pip + hatchling) then fills the runtime venvs below from outside
# (`pip --python`), so the images carry no package installer. Build-only stages carry no OCI labels (DL3049).
# hadolint ignore=DL3049
FROM ${PYTHON_IMAGE} AS wheel

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

COPY deploy/docker/*.lock /locks/
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary=:all: --no-deps -r /locks/build-requirements.lock

WORKDIR /src
COPY pyproject.toml README.md ./
COPY slicewise ./slicewise
COPY exporter ./exporter
COPY advisor ./advisor
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------------------------
# venv-exporter: only what slicewise-exporter imports (deploy/docker/exporter-requirements.lock), so the image that
# runs on every GPU node stays small. The `slicewise` command is removed: the advisor's stack is not installed.
FROM wheel AS venv-exporter
RUN python -m venv --without-pip /opt/slicewise \
    && /opt/build/bin/pip --python /opt/slicewise/bin/python install --require-hashes --only-binary=:all: \
        --no-deps -r /locks/exporter-requirements.lock \
    && /opt/build/bin/pip --python /opt/slicewise/bin/python install --no-deps --no-index /wheels/slicewise-*.whl \
    && rm /opt/slicewise/bin/slicewise \
    && /opt/slicewise/bin/python -c "import exporter.app, exporter.web.config, exporter.attribution.precedence" \
    && /opt/slicewise/bin/slicewise-exporter --version

# venv-advisor: every runtime dependency (deploy/docker/requirements.lock).
FROM wheel AS venv-advisor
RUN python -m venv --without-pip /opt/slicewise \
    && /opt/build/bin/pip --python /opt/slicewise/bin/python install --require-hashes --only-binary=:all: \
        --no-deps -r /locks/requirements.lock \
    && /opt/build/bin/pip --python /opt/slicewise/bin/python install --no-deps --no-index /wheels/slicewise-*.whl \
    && /opt/slicewise/bin/slicewise --version

# ---------------------------------------------------------------------------------------------------------------
# runtime: what both images share. An unprivileged user (uid/gid 10001) by default; docs/deploy.md says what the
# exporter needs from the node (the NVIDIA runtime, hostPID, the host's /proc) and why that does not need root.
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""

LABEL org.opencontainers.image.title="slicewise" \
      org.opencontainers.image.description="Measure how workloads use shared NVIDIA GPUs and recommend MIG, MPS, time-slicing or a whole GPU for each" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

RUN groupadd --system --gid 10001 slicewise \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/slicewise --create-home \
        --shell /usr/sbin/nologin slicewise

# MPLCONFIGDIR: matplotlib (the report's charts) needs a writable cache; under Kubernetes the root filesystem is
# read-only and /tmp is an emptyDir.
ENV PATH=/opt/slicewise/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /var/lib/slicewise
USER 10001:10001

# ---------------------------------------------------------------------------------------------------------------
# advisor: `slicewise ...` (advise, schedule, simulate, demo). No GPU: it reads Prometheus or a history file.
FROM runtime AS advisor

LABEL org.opencontainers.image.title="slicewise"
COPY --from=venv-advisor /opt/slicewise /opt/slicewise
ENTRYPOINT ["slicewise"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------------------
# exporter (the default target): `slicewise-exporter`, NVML through the NVIDIA container runtime. With
# NVIDIA_VISIBLE_DEVICES set, the runtime injects libnvidia-ml.so.1 and the /dev/nvidia* nodes; "utility" is the
# driver capability that carries NVML (and nvidia-smi), nothing for CUDA compute.
FROM runtime AS exporter

LABEL org.opencontainers.image.title="slicewise-exporter"
COPY --from=venv-exporter /opt/slicewise /opt/slicewise

ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility \
    SLICEWISE_HEALTHCHECK_URL=http://127.0.0.1:10052/

EXPOSE 10052

# The landing page, not /metrics: it proves the HTTP server answers without making every check a full NVML read.
# Change SLICEWISE_HEALTHCHECK_URL with --web.listen-address. With basic auth or TLS on (--web.config.file) this
# check fails: use the orchestrator's own probe (Kubernetes ignores HEALTHCHECK and uses the DaemonSet's probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['SLICEWISE_HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["slicewise-exporter"]
CMD []
