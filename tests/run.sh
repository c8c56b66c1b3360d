#!/usr/bin/env bash
# Sets up (first run installs tools; later runs take seconds to check) and runs
# every test: format, clippy, native unit + integration tests on the real data,
# the h5ad interop test through Python anndata, the browser build, the
# end-to-end test in headless Chromium, and a short run of every fuzz target.
#
# Env: TESSERA_DATA (default ../shared/data), TESSERA_REQUIRE_DATA=1 to fail
# when it is missing, FUZZ_SECONDS per fuzz target (default 20).
set -euo pipefail
source "$(dirname "$0")/../.ci/setup.sh"
cd "$ROOT"
export TESSERA_DATA="${TESSERA_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"

step() {
  local t0=$SECONDS c0; c0=$(cpu_seconds); say "── $1"; shift; "$@"
  say "   done in $((SECONDS - t0)) s (CPU $(( $(cpu_seconds) - c0 )) s)"
}
# User + system seconds of finished child processes (compiles are ~2x wall).
cpu_seconds() { times | awk 'NR==2 { split($1,u,"m"); split($2,s,"m"); printf "%d", u[1]*60+u[2]+s[1]*60+s[2] }'; }

ensure_python
ensure_browser
ensure_web_tools
ensure_fuzz

step "cargo fmt --check" cargo fmt --all -- --check
step "clippy (native, with the CUDA device)" cargo clippy --workspace --all-targets --features tessera-core/cli,tessera-core/cuda -- -D warnings
step "CUDA feature builds (no CUDA toolkit needed)" cargo build -p tessera-core --features cli,cuda
step "clippy (wasm: core, app, worker)" cargo clippy -p tessera-app -p tessera-core --target wasm32-unknown-unknown -- -D warnings
step "native tests" cargo test --workspace --features tessera-core/cli
step "GPU op tests in Chromium (WebGPU in a worker)" env CHROMEDRIVER=/usr/bin/chromedriver \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner WASM_BINDGEN_TEST_TIMEOUT=900 \
  cargo test -p tessera-core --target wasm32-unknown-unknown --test browser_ops
step "browser build (trunk --release)" build_app

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
step "browser end-to-end (headless chromium)" env TESSERA_VISIUM_ZIP="$tmp/scanpy_visium_test.zip" \
  node --test tests/e2e/cards.test.mjs
say "screenshots: tests/e2e/artifacts/"

step "fuzz (${FUZZ_SECONDS}s per reader)" bash core/fuzz/run.sh "$FUZZ_SECONDS"
say "all tests passed"
