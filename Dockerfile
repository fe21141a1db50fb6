# voxgate container image: `make image` (docker build -t voxgate:<version> .), then run it with
#   docker run --rm -p 50051:50051 -e DASHSCOPE_API_KEY=sk-... voxgate:<version>
# Two targets (docs/deploy.md, "Production image"):
#   production (the default, last stage): voxgate and its runtime dependencies only; it needs
#     DASHSCOPE_API_KEY and refuses to start without it, saying so.
#   demo (`docker build --target demo -t voxgate:<version>-demo .`): also the embedded local upstream's
#     audio stack (numpy, lameenc, soundfile, espeak-ng), so `docker run` works with no key at all.
# Reproducible: the base image is pinned by digest, every dependency by version and hash
# (requirements/*.txt, `pip install --require-hashes`), and the dependencies sit in their own layer,
# before the source, so a source change rebuilds only the last small layer.

# The base, by digest (a tag can move). The digest is the multi-platform index of
# python:3.11-slim-bookworm when it was pinned; refresh it (and re-check it, on a machine that
# reaches the registry) with
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# then replace the digest below, or override it per build: --build-arg PYTHON_IMAGE=<image>@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# --- builder: hashed dependencies into a pip-less virtualenv, then voxgate itself ------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
WORKDIR /src
# The build backend (setuptools), from its own hashed lock, for the builder's Python only.
COPY requirements/build.txt requirements/
RUN pip install --require-hashes --no-deps -r requirements/build.txt
# Every dependency (grpcio, protobuf, aiohttp, OpenTelemetry; numpy, lameenc and espeakng-loader
# for demo) ships binary wheels for linux amd64 and arm64, so nothing compiles here.
# --without-pip: the image ships no pip or setuptools (nothing installs at run time); the
# builder's pip installs into the venv through --python.
FROM builder AS deps-production
COPY requirements/runtime.txt requirements/
RUN python -m venv --without-pip /opt/voxgate \
    && pip --python /opt/voxgate/bin/python install --require-hashes --no-deps -r requirements/runtime.txt

FROM builder AS deps-demo
COPY requirements/demo.txt requirements/
RUN python -m venv --without-pip /opt/voxgate \
    && pip --python /opt/voxgate/bin/python install --require-hashes --no-deps -r requirements/demo.txt

# voxgate itself: one wheel, built once, installed last with --no-deps (its dependencies are above).
FROM builder AS wheel
COPY pyproject.toml ./
COPY server ./server
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

FROM deps-production AS venv-production
COPY --from=wheel /wheels /wheels
RUN pip --python /opt/voxgate/bin/python install --no-deps --no-index /wheels/*.whl

FROM deps-demo AS venv-demo
COPY --from=wheel /wheels /wheels
RUN pip --python /opt/voxgate/bin/python install --no-deps --no-index /wheels/*.whl
# pip compiled the bytecode above; at run time nothing is written (PYTHONDONTWRITEBYTECODE below),
# so the root filesystem can be read-only.

# --- runtime: a clean slim Python, a non-root user, the virtualenv --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# OCI labels; pass the real values at build time, e.g.
#   --build-arg REVISION=$(git rev-parse HEAD) --build-arg SOURCE=https://<your git host>/voxgate
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
# The project declares no licence; NOASSERTION is SPDX's "not stated". Set it when one is chosen.
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="voxgate" \
      org.opencontainers.image.description="gRPC gateway for DashScope CosyVoice speech synthesis with a warm connection pool" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}"
RUN groupadd --system --gid 10001 voxgate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin voxgate
ENV PATH=/opt/voxgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VOXGATE_LISTEN=0.0.0.0:50051
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051
# voxgate answers its own gRPC health service; orchestrators probe that (the chart uses native
# gRPC probes), so the image declares no HEALTHCHECK of its own.
HEALTHCHECK NONE
# voxgate handles SIGTERM itself (health NOT_SERVING, drain, close); flags may follow, e.g.
# `docker run voxgate --log-level DEBUG`.
ENTRYPOINT ["voxgate", "serve"]

FROM runtime AS demo
COPY --from=venv-demo /opt/voxgate /opt/voxgate

# The default target: last.
FROM runtime AS production
COPY --from=venv-production /opt/voxgate /opt/voxgate
