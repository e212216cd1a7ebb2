#!/usr/bin/env bash
# Installs facesvc into ./.venv and fetches its models from the package registries.
# The README, CI (.ci/run) and the Dockerfile all call this one script.
#   ./install.sh          the service
#   ./install.sh --test   the service and its test tools
#   ./install.sh --gpu    the service with onnxruntime-gpu instead of onnxruntime (NVIDIA driver >= 580)
set -euo pipefail
cd "$(dirname "$0")"
extras=""
gpu=0
for option in "$@"; do
  case "$option" in
    --test) extras="[test]" ;;
    --gpu) gpu=1 ;;
    *) echo "usage: $0 [--test] [--gpu]" >&2; exit 2 ;;
  esac
done
pip() { .venv/bin/python -m pip --quiet --disable-pip-version-check "$@"; }
[ -x .venv/bin/python ] || python3 -m venv .venv
pip install -e ".${extras}"
if [ "$gpu" = 1 ]; then
  # The build measured on an H200 (README, "GPU"): made for CUDA 13 and cuDNN 9, which its
  # extras install as pip packages (nvidia-*, loaded by workers/session.py), so the host needs
  # NVIDIA's driver only. Both wheels own the onnxruntime module: remove the CPU one, then
  # (re)write the GPU one's files in full, since uninstalling the CPU wheel deletes files the
  # two share; then its extras.
  ort_gpu="onnxruntime-gpu==1.31.1"
  pip uninstall -y onnxruntime
  pip install --force-reinstall --no-deps "$ort_gpu"
  pip install "${ort_gpu/==/[cuda,cudnn]==}"
fi
.venv/bin/facesvc models
