#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: bash core/fuzz/run.sh [SECONDS].
# Seeds each corpus with small real files from $TESSERA_DATA (copied into the
# ignored corpus/ folder, never committed). For a longer hunt:
#   cd core && cargo +nightly fuzz run h5ad -- -max_total_time=3600
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
cd ..
# A reader may ask for a huge buffer with try_reserve and get an error back, as
# it would outside the fuzzer; ASan must return null instead of aborting.
# Memory actually used is still capped by -rss_limit_mb.
export ASAN_OPTIONS="allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
for t in h5ad tenx_h5 table archive; do
  echo "fuzz: $t for ${secs}s"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" \
      -rss_limit_mb=8192 -malloc_limit_mb=1000000 -max_len=1048576 >"$log" 2>&1; then
    grep -v "^\s*\[" "$log" | cut -c1-300 | grep -B2 -A25 -m1 -E "panicked|ERROR: |out-of-memory" | head -n 40
    echo "fuzz: $t found a crash (reproducer under core/fuzz/artifacts/$t/)"
    exit 1
  fi
  grep -E "^Done|stat::number_of_executed_units" "$log" | tail -n 1
  rm -f "$log"
done
