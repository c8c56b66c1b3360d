#!/usr/bin/env bash
# One step on a machine with an NVIDIA GPU: builds with --features cuda, runs
# the CUDA and wgpu (Vulkan) op tests against the CPU oracle, then the
# tutorial-size cell2location benchmark and the NSF benchmark on cuda and on
# gpu, and prints their tables. Budget: under 8 minutes on a warm-up-free machine (the release build
# is most of it). Needs rustup/cargo; installs nothing system-wide.
#
# Env: EPOCHS (regression epochs timed, default 3), STEPS (mapping steps,
# default 20), OUT (folder for the logs and the JSON, default target/gpu).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
OUT="${OUT:-$ROOT/target/gpu}"
EPOCHS="${EPOCHS:-3}"
STEPS="${STEPS:-20}"
JOBS="$(nproc)"
mkdir -p "$OUT"
t0=$SECONDS
say() { printf '[gpu.sh %4ds] %s\n' "$((SECONDS - t0))" "$*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt" \
  || { say "no NVIDIA driver: nvidia-smi failed"; exit 1; }

say "building (release, cuda) with $JOBS jobs"
cargo build -q -j "$JOBS" --release -p tessera-core --features cli,cuda --bin tessera
say "CUDA op tests"
cargo test -q -j "$JOBS" --release -p tessera-core --features cli,cuda --test cuda_ops 2>&1 | tee "$OUT/cuda_ops.log" | tail -3
say "wgpu op tests (Vulkan)"
cargo test -q -j "$JOBS" --release -p tessera-core --features cli --test gpu_ops 2>&1 | tee "$OUT/gpu_ops.log" | tail -3
say "tutorial-size cell2location on cuda and gpu"
./target/release/tessera bench cell2location --size tutorial --device cuda --device gpu \
  --epochs "$EPOCHS" --lymph-steps "$STEPS" --json > "$OUT/bench.json"
python3 - "$OUT/bench.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
m = b["machine"]
print(f"host: {m['threads']} threads, read {m['bandwidth_gb_s']:.1f} GB/s (floors are the host's)")
print(f"| step | shape | device | s each | first s | +GiB host | tutorial length |")
print(f"|---|---|---|---|---|---|---|")
for r in b["rows"]:
    n = "250 epochs" if r["step"].startswith("regression") else "30,000 steps"
    print(f"| {r['step']} | {r['shape']} | {r['device']} | {r['seconds_per']:.4f} | {r['first_s']:.2f} | {r['peak_gib']:.2f} | {r['projected_s']:.0f} s ({n}) |")
PY
say "NSF: S1 and the Visium CytAssist fit on cuda and gpu (the issue's goal: the Visium fit under 10 s)"
./target/release/tessera bench nsf --device cuda --device gpu --epochs "${NSF_EPOCHS:-1000}" 2>"$OUT/bench_nsf.log" \
  | tee "$OUT/bench_nsf.txt"
say "done; logs in $OUT"
