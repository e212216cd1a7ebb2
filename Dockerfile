# facesvc image: CPU by default; `docker build --build-arg DEVICE=gpu .` builds on a CUDA base
# with onnxruntime-gpu. The build stage installs with ./install.sh, exactly as the README and
# CI do, so the image runs the tested install path.
ARG DEVICE=cpu

# Bases. The build stage and the runtime stage share one, so the virtual environment built in
# the first runs unchanged in the second (same Python at the same path).
FROM python:3.11-slim-bookworm AS base-cpu

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS base-gpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

FROM base-${DEVICE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# Build and model fetch: Node for `npm pack` of the model package; install.sh makes
# /opt/facesvc/.venv and fetches, converts and checksums the models into var/models.
FROM base AS build
ARG DEVICE
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/facesvc
COPY . .
RUN ./install.sh $([ "$DEVICE" = gpu ] && echo --gpu)

# Runtime: no Node, no compilers; the models are baked in, the data lives in a volume.
FROM base AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home facesvc
COPY --from=build /opt/facesvc /opt/facesvc
WORKDIR /opt/facesvc
ENV PATH=/opt/facesvc/.venv/bin:$PATH \
    FACESVC_DATA_DIR=/data \
    FACESVC_MODELS_DIR=/opt/facesvc/var/models \
    FACESVC_BIND=0.0.0.0:8080
# Checksums only (every model is cached): proves the baked models are complete and intact.
RUN facesvc models
USER facesvc
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["facesvc", "serve"]
