#!/usr/bin/env bash
# Builds retort with the `cuda` feature on a machine without a GPU or a CUDA install:
#   1. the CUDA 13.0 toolkit pieces from PyPI wheels (nvcc, nvvm, crt, cccl, cudart, nvrtc,
#      curand, cublas), unpacked once into a cache folder;
#   2. a stub libcuda.so.1 (the driver ships with the GPU node's NVIDIA driver, no wheel has
#      it): one empty function per driver symbol cudarc links, used at link time only;
#   3. cargo build --release --features cuda into target/cuda, CUDA_COMPUTE_CAP=90 (H100/H200);
#   4. strip and xz: target/cuda/retort-cuda.xz.
# `scripts/build-cuda.sh check` runs clippy on the cuda build instead (no binary).
# Environment: RETORT_CUDA_HOME (toolkit cache), CUDA_COMPUTE_CAP (default 90).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-build}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/retort"
home="${RETORT_CUDA_HOME:-$cache/cuda-13.0}"
root="$home/nvidia/cu13"
target=target/cuda

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$1" >&2; [[ -n "${2:-}" ]] && printf 'hint: %s\n' "$2" >&2; exit 1; }

# nvcc 13.0 exactly: a newer one may emit kernels the device's 580 driver (CUDA 13.0) rejects.
wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88
  nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14
)

toolkit() {
  if [[ -f "$home/.complete" ]]; then
    return
  fi
  command -v pip >/dev/null || die "pip is needed to fetch the CUDA wheels" "install python3-pip"
  command -v unzip >/dev/null || die "unzip is needed" "apt-get install -y unzip"
  command -v cc >/dev/null || die "a C compiler is needed for the driver stub" "apt-get install -y gcc"
  say "fetching the CUDA 13.0 wheels (about 675 MB) into $home/wheels"
  mkdir -p "$home/wheels"
  pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$home/wheels" "${wheels[@]}"
  say "unpacking"
  rm -rf "$home/nvidia"
  for w in "$home"/wheels/*.whl; do
    unzip -q -o "$w" 'nvidia/*' -d "$home"
  done
  [[ -x "$root/bin/nvcc" || -f "$root/bin/nvcc" ]] || die "no nvcc in $root/bin after unpacking"
  chmod +x "$root"/bin/* "$root"/nvvm/bin/* 2>/dev/null || true
  (
    cd "$root/lib"
    for l in cudart cublas cublasLt nvrtc; do
      [[ -e lib$l.so ]] || ln -s "lib$l.so.13" "lib$l.so"
    done
    [[ -e libcurand.so ]] || ln -s libcurand.so.10 libcurand.so
  )
  [[ -e "$root/lib64" ]] || ln -s lib "$root/lib64"
  stub
  touch "$home/.complete"
}

# The driver stub: every `cu*` function cudarc's driver bindings declare, each returning
# CUDA_ERROR_NO_DEVICE (100). Only the linker needs it; put first on LD_LIBRARY_PATH, it also
# lets this machine run the CUDA binary to test the "no GPU" error and `--device cpu`.
stub() {
  local src
  cargo fetch --quiet
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 2>/dev/null | head -1)"
  [[ -n "$src" ]] || die "cudarc 0.19.10 sources not found" "run \`cargo fetch\`"
  mkdir -p "$root/lib/stubs"
  grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$src/src/driver/sys/mod.rs" |
    sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/int \1(void) { return 100; }/' | sort -u >"$root/lib/stubs/cuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so.1" \
    "$root/lib/stubs/cuda_stub.c"
  ln -sf libcuda.so.1 "$root/lib/stubs/libcuda.so"
  say "driver stub: $(wc -l <"$root/lib/stubs/cuda_stub.c") symbols"
}

toolkit
export CUDA_HOME="$root" CUDA_PATH="$root"
export PATH="$root/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# Build scripts that run nvcc or load nvrtc at build time find the toolkit's libraries here;
# the shipped binary gets no rpath to them.
export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvcc --version | tail -2 >&2

case "$mode" in
  check)
    say "clippy on the cuda build (target dir $target)"
    cargo clippy --release --features cuda --all-targets --target-dir "$target" -- -D warnings
    ;;
  build)
    say "cargo build --release --features cuda (about 10 minutes clean on 2 cores)"
    start=$(date +%s)
    cargo build --release --features cuda --target-dir "$target"
    say "built in $(( $(date +%s) - start )) s"
    strip "$target/release/retort"
    xz -T0 -6 -k -f -c "$target/release/retort" >"$target/retort-cuda.xz"
    say "$target/release/retort: $(du -h "$target/release/retort" | cut -f1) stripped, $(du -h "$target/retort-cuda.xz" | cut -f1) as xz"
    sha256sum "$target/retort-cuda.xz" >&2
    cat >&2 <<EOF
On the GPU node (NVIDIA driver 580+, CUDA 13 libraries, e.g. those of PyTorch's wheels):
  xz -d retort-cuda.xz && chmod +x retort-cuda
  export LD_LIBRARY_PATH=\$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))'):\$LD_LIBRARY_PATH
  ./retort-cuda run PIPELINE.toml --device cuda
EOF
    ;;
  *)
    die "unknown mode \`$mode\`" "use \`scripts/build-cuda.sh\` or \`scripts/build-cuda.sh check\`"
    ;;
esac
