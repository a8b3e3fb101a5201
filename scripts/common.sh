# Helpers shared by scripts/demo.sh and scripts/test.sh; source it, do not run it.
# - strata_ensure_packages PKG...: installs the Debian packages that are missing (apt-get, as
#   root; `apt-get update` only when something must be installed). Not root: lists them, exits 1.
# - strata_add_cuda_to_path: puts the CUDA toolkit's bin/ on PATH when nvcc is not already there.
# - strata_configure BUILD_DIR CMAKE_ARGS...: configures with Ninja on first use, then re-uses
#   the existing cache (keeping its generator).

# shellcheck shell=bash

STRATA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# What building Strata needs, beyond the OS (and, optionally, the CUDA toolkit).
# shellcheck disable=SC2034  # read by the scripts that source this file
STRATA_BUILD_PACKAGES=(cmake ninja-build g++ ccache pkg-config libopenblas-dev libopenblas-openmp-dev zlib1g-dev
  nlohmann-json3-dev libdnnl-dev libopenmpi-dev openmpi-bin)

strata_log() {
  printf '\033[1m==> %s\033[0m\n' "$*" >&2
}

strata_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

strata_ensure_packages() {
  if ! command -v dpkg >/dev/null 2>&1; then
    strata_log "not a Debian system: make sure these (or their equivalents) are installed: $*"
    return 0
  fi
  local missing=() package
  for package in "$@"; do
    if ! dpkg -s "$package" >/dev/null 2>&1; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if [[ "$(id -u)" != 0 ]]; then
    printf 'error: these packages are missing: %s\n' "${missing[*]}" >&2
    printf 'install them with:\n  sudo apt-get update && sudo apt-get install -y %s\n' \
      "${missing[*]}" >&2
    exit 1
  fi
  strata_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
}

strata_add_cuda_to_path() {
  if command -v nvcc >/dev/null 2>&1; then
    return 0
  fi
  local dir
  for dir in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    if [[ -n "$dir" && -x "$dir/bin/nvcc" ]]; then
      export PATH="$dir/bin:$PATH"
      strata_log "CUDA toolkit: $dir (added $dir/bin to PATH)"
      return 0
    fi
  done
  strata_log "no CUDA toolkit found: building the CPU backend only"
}

strata_configure() {
  local build_dir="$1"
  shift
  local generator=()
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    generator=(-G Ninja)
  fi
  cmake -S "$STRATA_ROOT" -B "$build_dir" "${generator[@]}" "$@"
}

strata_jobs() {
  nproc 2>/dev/null || echo 2
}

# Seconds as "12m 34s".
strata_format_duration() {
  printf '%dm %02ds' $(($1 / 60)) $(($1 % 60))
}
