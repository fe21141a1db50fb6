# voxgate container image: `make image` (docker build -t voxgate:<version> .), then run it with
#   docker run --rm -p 50051:50051 [-e DASHSCOPE_API_KEY=sk-...] voxgate:<version>
# Two stages: the builder turns the source into wheels and installs them into a virtualenv; the
# final stage copies only that virtualenv onto a clean slim Python, and runs as a non-root user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
WORKDIR /src
# Every dependency (grpcio, numpy, lameenc, espeakng-loader with espeak-ng and its voice data, ...)
# ships binary wheels for linux amd64 and arm64, so nothing compiles here. On a platform without
# them, install build-essential in this stage only.
COPY pyproject.toml ./
COPY server ./server
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/voxgate \
    && /opt/voxgate/bin/pip install --no-index --find-links /wheels voxgate
# pip compiled the bytecode above; at run time nothing is written (PYTHONDONTWRITEBYTECODE below),
# so the root filesystem can be read-only.

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="voxgate" \
      org.opencontainers.image.description="gRPC gateway for DashScope CosyVoice speech synthesis with a warm connection pool"
RUN groupadd --system --gid 10001 voxgate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin voxgate
COPY --from=builder /opt/voxgate /opt/voxgate
ENV PATH=/opt/voxgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VOXGATE_LISTEN=0.0.0.0:50051
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051
# voxgate handles SIGTERM itself (health NOT_SERVING, drain, close); flags may follow, e.g.
# `docker run voxgate --log-level DEBUG`.
ENTRYPOINT ["voxgate", "serve"]
