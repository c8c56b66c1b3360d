#!/usr/bin/env bash
# Sets up (first run installs tools; later runs take seconds to check) and runs
# every test: format, clippy, native unit + integration tests on the real data,
# the h5ad interop test through Python anndata, the browser build, the
# end-to-end test in headless Chromium, and a short run of every fuzz target.
#
# Env: TESSERA_DATA (default ../shared/data), TESSERA_REQUIRE_DATA=1 to fail
# when it is missing, FUZZ_SECONDS per fuzz target (default 10).
set -euo pipefail
source "$(dirname "$0")/../.ci/setup.sh"
cd "$ROOT"
export TESSERA_DATA="${TESSERA_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
FUZZ_SECONDS="${FUZZ_SECONDS:-10}"

step() {
  local t0=$SECONDS c0; cpu_mark; c0=$CPU_NOW; say "── $1"; shift; "$@"
  cpu_mark; say "   done in $((SECONDS - t0)) s (CPU $((CPU_NOW - c0)) s)"
}
# CPU_NOW = user + system seconds of this shell's finished children (a
# compile's CPU time is about twice its wall time on 2 cores). `times` must
# run in this shell, not in a $(...) subshell, to see them.
cpu_mark() {
  mkdir -p "$ROOT/target"; times >"$ROOT/target/.times" 2>/dev/null || { CPU_NOW=0; return; }
  CPU_NOW=$(awk 'NR==2 { split($1,u,"m"); split($2,s,"m"); printf "%d", u[1]*60+u[2]+s[1]*60+s[2] }' "$ROOT/target/.times")
}

ensure_python
ensure_browser
ensure_web_tools
ensure_fuzz

# Lints ride on the builds the tests need anyway: clippy-driver compiles the
# workspace crates (what `cargo clippy` does in check mode), so no crate is
# compiled a second time only to be linted. -D warnings as `cargo clippy`.
CLIPPY_DRIVER="$(rustup which clippy-driver)"
linted() (
  export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
  "$@"
)

step "cargo fmt --check" cargo fmt --all -- --check
# The CUDA device builds and lints without a toolkit (cudarc loads the
# driver at run time), so the native tests build with it: one compile of the
# core for both. Its own tests (cuda_ops) need a GPU machine: built, not run.
native_tests=$(awk '/^\[\[test\]\]/ { t = 1 } t && /^name = / { gsub(/"/, "", $3); print "--test", $3; t = 0 }' core/Cargo.toml | grep -v ' cuda_ops$')
step "native tests, CUDA device build (linted)" linted cargo test -p tessera-core --features cli,cuda --lib --bins $native_tests
step "CUDA op tests build (linted)" linted cargo test -p tessera-core --features cli,cuda --test cuda_ops --no-run
step "GPU op tests in Chromium (WebGPU in a worker; linted for wasm)" linted env CHROMEDRIVER=/usr/bin/chromedriver \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner WASM_BINDGEN_TEST_TIMEOUT=900 \
  cargo test -p tessera-core --target wasm32-unknown-unknown --test browser_ops
# The app is wasm-only: this release build is where it is compiled and linted.
step "browser build (trunk --release, linted)" linted build_app

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# A Space Ranger folder zipped the way a user would send it.
[ -d "$TESSERA_DATA/scanpy_visium_test" ] && python3 - "$TESSERA_DATA/scanpy_visium_test" "$tmp/scanpy_visium_test.zip" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in os.walk(src):
        for f in files:
            p = os.path.join(d, f)
            z.write(p, os.path.join("scanpy_visium_test", os.path.relpath(p, src)))
PY
# The workbench test compares the page with the CLI the native tests built.
step "browser end-to-end (headless chromium)" env TESSERA_VISIUM_ZIP="$tmp/scanpy_visium_test.zip" \
  TESSERA_BIN="$ROOT/target/debug/tessera" \
  node --test --test-concurrency=1 tests/e2e/cards.test.mjs tests/e2e/workbench.test.mjs tests/e2e/safety.test.mjs
say "screenshots: tests/e2e/artifacts/"

step "fuzz (${FUZZ_SECONDS}s per reader)" bash core/fuzz/run.sh "$FUZZ_SECONDS"
say "all tests passed"
