#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a bounded time:
# bash core/fuzz/run.sh [SECONDS [TARGET...]] (a longer hunt: bash core/fuzz/run.sh 3600). Seeds each corpus with small
# real files from $TESSERA_DATA (copied into the ignored corpus/ folder, never
# committed). Builds the libFuzzer targets the way cargo-fuzz does (its
# sanitizer and coverage flags, debug assertions; opt-level 1 builds faster) with plain
# nightly cargo, so CI need not compile cargo-fuzz itself.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
data="${TESSERA_DATA:-../../../shared/data}"
seed() {
  local target="$1"; shift
  mkdir -p "corpus/$target"
  for f in "$@"; do
    if [ -f "$data/$f" ]; then cp -f "$data/$f" "corpus/$target/"; fi
  done
}
seed h5ad rctd_slideseq_cerebellum/derived/spatial.h5ad nsf_simulations/S6.h5ad
seed tenx_h5 scanpy_visium_test/filtered_feature_bc_matrix.h5
seed table merscope_small/small_cell_metadata.csv cosmx_lung_small/small_Lung9_Rep1_exprMat_file.csv \
  rctd_slideseq_cerebellum/spatial/BeadLocationsForR.csv
seed archive
# link, bundle and resolvi_model write their own seeds at start-up (src/lib.rs).
cd ..
# A reader may ask for a huge buffer with try_reserve and get an error back, as
# it would outside the fuzzer; ASan must return null instead of aborting.
# Memory actually used is still capped by -rss_limit_mb.
export ASAN_OPTIONS="allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
targets=(h5ad tenx_h5 table archive link bundle resolvi_model)
if [ $# -gt 1 ]; then targets=("${@:2}"); fi
echo "fuzz: building ${targets[*]} (nightly, address sanitizer)"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Zsanitizer=address -Cdebug-assertions" \
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
  cargo +nightly build -q --release --target "$host" --manifest-path fuzz/Cargo.toml --bins
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${secs}s"
  mkdir -p "fuzz/artifacts/$t"
  log="$(mktemp)"
  mkdir -p "fuzz/corpus/$t"
  if ! TESSERA_FUZZ_SEEDS="fuzz/corpus/$t" "fuzz/target/$host/release/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
      -max_total_time="$secs" -rss_limit_mb=8192 -malloc_limit_mb=1000000 -max_len=1048576 >"$log" 2>&1; then
    grep -v "^\s*\[" "$log" | cut -c1-300 | grep -B2 -A25 -m1 -E "panicked|ERROR: |out-of-memory" | head -n 40
    echo "fuzz: $t found a crash (reproducer under core/fuzz/artifacts/$t/)"
    exit 1
  fi
  # libFuzzer's last status line: executions, coverage and features.
  grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -n 1 |
    sed -E "s/^#([0-9]+)[[:space:]]+DONE[[:space:]]+cov: ([0-9]+) ft: ([0-9]+).*exec\/s: ([0-9]+).*/fuzz: $t: \1 executions (\4 per s), coverage \2, features \3, no crash/"
  rm -f "$log"
done
