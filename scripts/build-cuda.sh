#!/usr/bin/env bash
# Builds retort with the `cuda` feature on a machine without a GPU or a CUDA install:
#   1. the CUDA 13.0 toolkit pieces from PyPI wheels (nvcc, nvvm, crt, cccl, cudart, nvrtc,
#      curand, cublas), downloaded and unpacked once into a cache folder;
#   2. a stub libcuda.so.1 (the real one ships with the GPU node's NVIDIA driver, no wheel has
#      it): one function per driver symbol cudarc declares, used at link time only;
#   3. cargo build --release --features cuda into target/cuda, CUDA_COMPUTE_CAP=90 (H100/H200);
#   4. strip and xz: target/cuda/release/retort and target/cuda/retort-cuda.xz.
#
# Usage:
#   scripts/build-cuda.sh          the binary (steps 1-4)
#   scripts/build-cuda.sh check    clippy -D warnings on the cuda build, all targets (no binary)
#   eval "$(scripts/build-cuda.sh env)"
#                                  the toolkit's environment in this shell, for hand-run cargo
#                                  commands (always pass --target-dir target/cuda)
# Environment: RETORT_CUDA_HOME (toolkit cache, default ~/.cache/retort/cuda-13.0),
# CUDA_COMPUTE_CAP (default 90: sm_90, H100/H200).
#
# Link-time facts this relies on (cudarc 0.19 with candle's `dynamic-linking`, candle-kernels
# through cudaforge):
# - cudarc's build script adds `-L $CUDA_HOME/{lib,lib/stubs,lib64,lib64/stubs}` and links
#   cuda, nvrtc, curand, cublas, cublasLt; candle-kernels links cudart. So the stub in
#   lib/stubs is found through CUDA_HOME alone, and rustc puts no rpath in the binary.
# - cudaforge finds nvcc through NVCC (unset here), then PATH (the toolkit's bin first), then
#   CUDA_HOME/bin, and takes the GPU architecture from CUDA_COMPUTE_CAP (else it would run
#   nvidia-smi, which is absent here).
set -euo pipefail

say() { printf '== %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$1" >&2
  if [[ -n "${2:-}" ]]; then printf 'hint: %s\n' "$2" >&2; fi
  exit 1
}
# Seconds since the given start, as "Nm Ss".
took() {
  local s=$(($(date +%s) - $1))
  printf '%dm %02ds' $((s / 60)) $((s % 60))
}

# nvcc 13.0 exactly: a newer one may emit kernels the device's 580 driver (CUDA 13.0) rejects.
wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88
  nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14
)

# Step 1: download and unpack once; `$home/.complete` marks a finished toolkit.
toolkit() {
  if [[ -f "$home/.complete" && -x "$root/bin/nvcc" ]]; then
    say "CUDA 13.0 toolkit: $root (cached)"
    return
  fi
  local need
  for need in pip unzip; do
    command -v "$need" >/dev/null || die "\`$need\` is needed to fetch the CUDA wheels" \
      "apt-get install -y python3-pip unzip"
  done
  rm -f "$home/.complete"
  mkdir -p "$home/wheels"
  local t=$(date +%s)
  say "downloading the CUDA 13.0 wheels (about 675 MB) into $home/wheels"
  # Already downloaded wheels are kept, so an interrupted download resumes here.
  pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    -d "$home/wheels" "${wheels[@]}" ||
    die "pip download of the CUDA wheels failed" "check access to PyPI (pip config list)"
  say "downloaded in $(took "$t") ($(du -sh "$home/wheels" | cut -f1))"

  t=$(date +%s)
  say "unpacking into $home/nvidia"
  rm -rf "$home/nvidia"
  local w
  for w in "$home"/wheels/*.whl; do
    unzip -q -o "$w" 'nvidia/*' -d "$home"
  done
  [[ -f "$root/bin/nvcc" ]] || die "no nvcc in $root/bin after unpacking" \
    "delete $home and run again"
  chmod +x "$root"/bin/* "$root"/nvvm/bin/*
  (
    cd "$root/lib"
    local l
    for l in cudart cublas cublasLt nvrtc; do
      [[ -f "lib$l.so.13" ]] || die "lib$l.so.13 missing from $root/lib"
      ln -sfn "lib$l.so.13" "lib$l.so"
    done
    ln -sfn libcurand.so.10 libcurand.so
  )
  ln -sfn lib "$root/lib64"
  touch "$home/.complete"
  say "unpacked in $(took "$t") ($(du -sh "$home/nvidia" | cut -f1))"
}

# Step 2: the driver stub, rebuilt when the cudarc version in Cargo.lock changes. Every `cu*`
# function cudarc's driver bindings declare returns CUDA_ERROR_NO_DEVICE (100): with
# lib/stubs first on LD_LIBRARY_PATH, this machine can even start the CUDA binary and see
# the "no CUDA device" error. It lives in the toolkit cache only, never next to the binary.
stub() {
  local version src stubs="$root/lib/stubs"
  version="$(awk '/^name = "cudarc"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
  [[ -n "$version" ]] || die "no cudarc in Cargo.lock" "the cuda feature pulls it in: run \`cargo update -p cudarc\`?"
  if [[ -f "$stubs/libcuda.so.1" && "$(cat "$stubs/cudarc-version" 2>/dev/null)" == "$version" ]]; then
    return
  fi
  command -v cc >/dev/null || die "a C compiler is needed for the driver stub" "apt-get install -y gcc"
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$version" 2>/dev/null | head -1 || true)"
  if [[ -z "$src" ]]; then
    say "fetching crate sources (cudarc $version)"
    cargo fetch --quiet
    src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$version" 2>/dev/null | head -1 || true)"
  fi
  [[ -n "$src" && -f "$src/src/driver/sys/mod.rs" ]] ||
    die "cudarc $version sources not found under ${CARGO_HOME:-$HOME/.cargo}/registry/src" "run \`cargo fetch\`"
  mkdir -p "$stubs"
  { grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$src/src/driver/sys/mod.rs" || true; } |
    sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/int \1(void) { return 100; }/' | sort -u >"$stubs/cuda_stub.c"
  [[ -s "$stubs/cuda_stub.c" ]] || die "no cu* symbols found in $src/src/driver/sys/mod.rs"
  cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so.1" "$stubs/cuda_stub.c"
  ln -sfn libcuda.so.1 "$stubs/libcuda.so"
  echo "$version" >"$stubs/cudarc-version"
  say "driver stub for cudarc $version: $(wc -l <"$stubs/cuda_stub.c") symbols in $stubs"
}

# The environment every cargo command of the cuda build runs in.
# (cudarc's build script reruns, and everything above it rebuilds, whenever CUDA_HOME,
# CUDA_PATH or, for cudaforge, NVCC change: keep this set stable.)
cuda_env() {
  export CUDA_HOME="$root" CUDA_PATH="$root"
  unset NVCC
  export PATH="$root/bin:$PATH"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  # For the linker only: it resolves the toolkit libraries' own dependencies (libcublas needs
  # libcublasLt) through LD_LIBRARY_PATH. The shipped binary gets no rpath to any of this.
  export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

build() {
  local bin="$target/release/retort" t
  t=$(date +%s)
  say "cargo build --release --features cuda --target-dir $target (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP; about 15 minutes clean on 2 cores)"
  cargo build --release --features cuda --target-dir "$target"
  say "built in $(took "$t")"

  # The binary must need the driver's libcuda.so.1 by SONAME and carry no path to the stub.
  if readelf -d "$bin" | grep -qE 'RPATH|RUNPATH'; then
    die "$bin has an rpath: $(readelf -d "$bin" | grep -E 'RPATH|RUNPATH')" \
      "look for -Wl,-rpath in RUSTFLAGS or .cargo/config.toml"
  fi
  readelf -d "$bin" | grep -q 'NEEDED.*\[libcuda\.so\.1\]' ||
    die "$bin does not link libcuda.so.1: was it built without --features cuda?"

  t=$(date +%s)
  strip "$bin"
  xz -T0 -6 -f -c "$bin" >"$target/retort-cuda.xz.tmp"
  mv "$target/retort-cuda.xz.tmp" "$target/retort-cuda.xz"
  say "stripped and compressed in $(took "$t")"
  local mib='{ printf "%.1f MiB", $1 / 1048576 }'
  printf '\n%s  %s (stripped)\n%s  %s (xz)\n' \
    "$(stat -c %s "$bin" | awk "$mib")" "$bin" \
    "$(stat -c %s "$target/retort-cuda.xz" | awk "$mib")" "$target/retort-cuda.xz"
  sha256sum "$bin" "$target/retort-cuda.xz"
  cat <<EOF

It needs, at start-up: $(readelf -d "$bin" | sed -nE 's/.*NEEDED.*\[(lib(cuda|cublas|curand|cudart|nvrtc)[^]]*)\]/\1/p' | tr '\n' ' ')
(libcuda.so.1 from the NVIDIA driver, 580 or newer; the others, and libcublasLt.so.13 which
libcublas loads, from CUDA 13 user-space libraries, e.g. the nvidia-* cu13 wheels of PyTorch).

On the GPU node:
  xz -dc retort-cuda.xz >retort-cuda && chmod +x retort-cuda
  export LD_LIBRARY_PATH=\$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))'):\$LD_LIBRARY_PATH
  ./retort-cuda run PIPELINE.toml --device cuda
Built for CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP (sm_$CUDA_COMPUTE_CAP); set it to build for another GPU.
EOF
}

check() {
  local t=$(date +%s)
  say "cargo clippy --release --features cuda --all-targets --target-dir $target -- -D warnings"
  cargo clippy --release --features cuda --all-targets --target-dir "$target" -- -D warnings
  say "clippy on the cuda build passed in $(took "$t")"
}

# Everything runs from main, after bash has read the whole file: editing this script while a
# build is running does not change what the running build does next.
main() {
  cd "$(dirname "$0")/.."
  mode="${1:-build}"
  home="${RETORT_CUDA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/retort/cuda-13.0}"
  root="$home/nvidia/cu13"
  target=target/cuda
  case "$mode" in
    build | check | env) ;;
    -h | --help | help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown mode \`$mode\`" "use \`scripts/build-cuda.sh\`, \`scripts/build-cuda.sh check\` or \`scripts/build-cuda.sh env\`" ;;
  esac
  command -v cargo >/dev/null || die "cargo is not on PATH" "install Rust with rustup"

  toolkit
  stub
  cuda_env
  [[ "$(command -v nvcc)" == "$root/bin/nvcc" ]] || die "nvcc on PATH is not the toolkit's: $(command -v nvcc)"
  nvcc --version | tail -2 | head -1 >&2
  case "$mode" in
    build) build ;;
    check) check ;;
    env)
      printf 'export CUDA_HOME=%q CUDA_PATH=%q CUDA_COMPUTE_CAP=%q\n' "$CUDA_HOME" "$CUDA_PATH" "$CUDA_COMPUTE_CAP"
      printf 'export PATH=%q LD_LIBRARY_PATH=%q\n' "$PATH" "$LD_LIBRARY_PATH"
      ;;
  esac
}

main "$@"
exit
