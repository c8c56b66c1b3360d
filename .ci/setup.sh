#!/usr/bin/env bash
# Installs what building, serving and testing Tessera need on a fresh Debian
# machine with rustup/cargo and root. Sourced by www/serve.sh and tests/run.sh;
# every step checks first, so a machine that has everything pays seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRUNK_VERSION=0.21.14
# wasm-opt from npm's binaryen: Debian's (108) breaks the module silently.
BINARYEN_VERSION=132.0.0
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
# Every wasm build (the app, its worker, the browser op tests) uses WebAssembly
# SIMD: every browser with WebGPU runs it, and the CPU device's loops vectorise.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128"

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  if [ $apt_updated -eq 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Rust needs a C linker; a bare image with rustup alone may lack one.
command -v cc >/dev/null || apt_install build-essential

ensure_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown \
    || { say "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
}

# The wasm-bindgen version pinned in Cargo.toml (and so in Cargo.lock).
wasm_bindgen_version() {
  sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' "$ROOT/Cargo.toml"
}

ensure_web_tools() {
  ensure_wasm_target
  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    # trunk's own release profile (fat LTO, one codegen unit) takes ~20 min on
    # 2 cores; a build tool that mostly waits on cargo needs none of it: ~4 min.
    say "installing trunk $TRUNK_VERSION (first time only, ~4 min on 2 cores)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
      cargo install --locked trunk --version "$TRUNK_VERSION"
  fi
  local v; v="$(wasm_bindgen_version)"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $v" ]; then
    # Without --locked: the CLI's own lockfile names a crate the registry lacks.
    # Its release profile's LTO buys little for a tool run a few times per
    # build; opt-level 1 keeps it quick on a large .wasm.
    say "installing wasm-bindgen-cli $v (first time only, ~3 min)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
      CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false \
      cargo install wasm-bindgen-cli --version "$v"
  fi
}

ensure_browser() {
  apt_install chromium chromium-driver mesa-vulkan-drivers
  # Any node >= 18 will do; only bring Debian's when there is none.
  command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d "$ROOT/tests/e2e/node_modules/playwright-core" ]; then
    say "npm install (playwright-core; uses the system chromium, downloads no browser)"
    (cd "$ROOT/tests/e2e" && npm install --no-audit --no-fund --silent)
  fi
}

ensure_python() {
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  if ! "$ROOT/.venv/bin/python" -c 'import anndata, h5py' 2>/dev/null; then
    say "creating .venv with anndata (for the h5ad interop test)"
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check anndata h5py
  fi
}

ensure_fuzz() {
  # libFuzzer's sanitizer flags need nightly; core/fuzz/run.sh builds the
  # targets with plain cargo (no cargo-fuzz to compile).
  rustup toolchain list | grep -q '^nightly' || { say "rustup toolchain install nightly"; rustup toolchain install nightly --profile minimal; }
}

# wasm-opt for trunk's release build, found on PATH (trunk never downloads).
ensure_wasm_opt() {
  command -v npm >/dev/null || apt_install nodejs npm
  local bin="$ROOT/.tools/node_modules/.bin"
  if [ "$("$bin/wasm-opt" --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
    say "npm install binaryen@$BINARYEN_VERSION (wasm-opt for the release build)"
    npm install --prefix "$ROOT/.tools" --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION"
  fi
  export PATH="$bin:$PATH"
}

# Builds the browser app into dist/ (release: what users get).
build_app() {
  ensure_web_tools
  ensure_wasm_opt
  (cd "$ROOT" && cargo fetch -q && trunk build --release)
}
