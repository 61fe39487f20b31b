#!/usr/bin/env bash
# make cuda-llama-server: build the real CUDA llama-server (b11312, sm_90) once with the llamacpp role's
# own build tasks (its CMake flags, RUNPATH $ORIGIN/../lib, bundle_libs), then copy the build with the
# role's copy_build.yml into a container of the node image, which has no CUDA at all, where ldd must
# find every library and --version must run. About 40 min on 2 cores (the CUDA kernels); run it by hand.
# This machine has nvcc and cudart but no cuBLAS and no libcuda: cuBLAS comes from the nvidia-cublas
# wheel (major 13, as the toolkit), and GGML_CUDA_NO_VMM=ON because there is no libcuda to link against
# (real CUDA nodes have the driver and keep VMM on).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
version=${VERSION:-b11312}
cache=${CUDA_BUILD_CACHE:-$root/.cache/cuda-build}
node=cuda-llama-server-node
source_tarball=${ANIMAFLOW_MIRROR:-$root/.cache/mirror}/llamacpp/llama.cpp-$version.tar.gz
command -v nvcc >/dev/null || { echo "nvcc is not on PATH: install the CUDA toolkit (13.x)" >&2; exit 1; }
[ -f "$source_tarball" ] || { echo "$source_tarball missing: run tests/infra/prepare-mirror.sh" >&2; exit 1; }
wheel=$(.venv/bin/python tests/infra/cuda_wheels.py)
docker rm -f "$node" >/dev/null 2>&1 || true
docker run -d --name "$node" --network none "${ANIMAFLOW_NODE_IMAGE:-animaflow/node:bookworm}" sleep infinity >/dev/null
trap 'docker rm -f "$node" >/dev/null 2>&1 || true' EXIT
extra=$(printf '{"llamacpp_build_jobs": %s, "llamacpp_build_library_path": ["%s/lib"], "llamacpp_cmake_extra_args": ["-DGGML_CUDA_NO_VMM=ON", "-DCUDA_cublas_LIBRARY=%s/lib/libcublas.so.13", "-DCUDA_cublasLt_LIBRARY=%s/lib/libcublasLt.so.13", "-DCMAKE_CUDA_FLAGS=-I%s/include"]}' \
  "$(nproc)" "$wheel" "$wheel" "$wheel" "$wheel")
start=$(date +%s)
nice -n 19 .venv/bin/ansible-playbook tests/infra/gpu-bundle.yml \
  -e gpu_bundle_tasks=build -e "gpu_bundle_version=$version" -e "gpu_bundle_source=$source_tarball" \
  -e "gpu_bundle_cache=$cache" -e "gpu_bundle_node=$node" -e "$extra"
echo "build, bundle and node check took $(( $(date +%s) - start )) s"
echo "--- ldd on the node (no CUDA installed there):"
docker exec "$node" ldd "/opt/animaflow/llamacpp/$version/bin/llama-server"
du -sh "$cache"/llamacpp/builds/*
