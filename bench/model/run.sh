#!/usr/bin/env bash
# Model inference speed: doppel's engine vs ONNX Runtime (onnxruntime-node
# 1.30) on the same ONNX file, in the same run, on the same machine, with the
# same thread count.
#
#   bench/model/run.sh [--build-dir DIR] [--reps R] [--warmup W] [--rounds K]
#                      [--threads "1 2"] [--no-spin] [--write-docs] [MODEL...]
#
# MODEL defaults to inception-v3 mobilenet-v2-mid. Each model is measured as
# doppel uses it: the graph cut at its embedding node (tools/models/
# onnx_outputs.py --only), written once to a temp file that both engines load.
# For each thread count, batch 1 (latency) and batch 16 (throughput) are timed:
# W warm-up runs, then R timed runs, repeated in K rounds that alternate the
# engines (doppel, ORT, doppel, ORT, ...) so load from other processes hits
# both alike; the cell is the median of all K*R runs. Prints a markdown table
# (ratio = doppel time / ORT time: below 1 means doppel is faster) and, with
# --write-docs, puts it into docs/benchmarks.md between the model-bench
# markers. Peak RSS of each engine's process is reported too.
# --no-spin makes both engines' idle threads sleep instead of spin-waiting
# (OMP_WAIT_POLICY=PASSIVE for doppel's OpenMP, allow_spinning=0 for ORT),
# which matters on a machine shared with other work; its table goes under its
# own markers.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${DP_BUILD_DIR:-$ROOT/build}
REPS=10
WARMUP=3
ROUNDS=2
THREADS="1 2"
WRITE_DOCS=0
SPIN=1
MODELS=()
while (($#)); do
  case "$1" in
  --build-dir) BUILD=$2; shift 2 ;;
  --reps) REPS=$2; shift 2 ;;
  --warmup) WARMUP=$2; shift 2 ;;
  --rounds) ROUNDS=$2; shift 2 ;;
  --threads) THREADS=$2; shift 2 ;;
  --write-docs) WRITE_DOCS=1; shift ;;
  --no-spin) SPIN=0; shift ;;
  -*) echo "bench: unknown option $1" >&2; exit 2 ;;
  *) MODELS+=("$1"); shift ;;
  esac
done
((${#MODELS[@]})) || MODELS=(inception-v3 mobilenet-v2-mid)

if [[ ! -x $BUILD/tests/dp_bench_model ]]; then
  cmake -S "$ROOT" -B "$BUILD" >/dev/null
  cmake --build "$BUILD" -j2 --target dp_bench_model >/dev/null
fi
DP=$BUILD/tests/dp_bench_model
NODE_PATH=$(bash "$ROOT/tests/reference/node_deps.sh")
export NODE_PATH

OMP_POLICY=""
((SPIN)) || OMP_POLICY=PASSIVE
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dp-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
RESULTS=$TMP/results.jsonl

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
echo "bench: $(nproc) cores ($cpu), load average $LOAD_START" >&2

for name in "${MODELS[@]}"; do
  bash "$ROOT/tools/fetch_models.sh" "$name" >&2
  read -r W H NODE < <("$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["input"]["width"], d["input"]["height"], d["embedding"]["node"])' "$ROOT/models/$name.json")
  cut=$TMP/$name.onnx
  "$PYTHON" "$ROOT/tools/models/onnx_outputs.py" "$ROOT/models/$name.onnx" "$cut" "$NODE" --only
  for t in $THREADS; do
    for b in 1 16; do
      for ((r = 0; r < ROUNDS; r++)); do
        echo "bench: $name threads=$t batch=$b round $((r + 1))/$ROUNDS" >&2
        env OMP_NUM_THREADS="$t" ${OMP_POLICY:+OMP_WAIT_POLICY=$OMP_POLICY} "$DP" "$cut" --size "${W}x${H}" --output "$NODE" --threads "$t" \
          --batch "$b" --warmup "$WARMUP" --reps "$REPS" |
          sed "s/^{/{\"name\":\"$name\",\"round\":$r,/" >>"$RESULTS"
        node "$HERE/ort_bench.cjs" "$cut" --size "${W}x${H}" --threads "$t" --batch "$b" \
          --warmup "$WARMUP" --reps "$REPS" --spin "$SPIN" |
          sed "s/^{/{\"name\":\"$name\",\"round\":$r,/" >>"$RESULTS"
      done
    done
  done
done

TABLE=$TMP/table.md
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)
"$PYTHON" - "$RESULTS" "$cpu" "$(nproc)" "$REPS" "$WARMUP" "$ROUNDS" "$LOAD_START" "$LOAD_END" "$SPIN" >"$TABLE" <<'EOF'
import json, statistics, sys, datetime
path, cpu, ncores, reps, warmup, rounds, load0, load1, spin = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cells = {}
for r in rows:
    key = (r["name"], r["threads"], r["batch"])
    c = cells.setdefault(key, {}).setdefault(r["engine"], {"times": [], "rss": 0, "version": ""})
    c["times"] += r["times_ms"]
    c["rss"] = max(c["rss"], r["peak_rss_kb"])
    c["version"] = r.get("version", "")
ort_version = next((r["version"] for r in rows if r["engine"] == "ort"), "?")
print(f"Measured {datetime.date.today()} on {ncores} cores ({cpu}); doppel vs onnxruntime-node "
      f"{ort_version}; {warmup} warm-up runs, then {rounds} rounds x {reps} timed runs per engine "
      f"and cell, engines alternating. 1-minute load average {load0} at the start, {load1} at "
      f"the end (the machine is shared: other processes compete for the same cores). Ratio = "
      f"doppel time / ORT time, below 1 means doppel is faster; 'median' compares the medians, "
      f"'best' the fastest run of each engine, which is less sensitive to other load. " +
      ("Idle threads spin-wait (both engines' defaults)." if spin == "1" else
       "Idle threads sleep: OMP_WAIT_POLICY=PASSIVE for doppel, allow_spinning=0 for ORT."))
print()
print("| model (graph up to) | threads | batch | doppel ms/batch | ORT ms/batch | doppel img/s | ORT img/s | doppel/ORT median | doppel/ORT best |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for (name, t, b), c in sorted(cells.items()):
    d, o = c.get("doppel"), c.get("ort")
    if not d or not o:
        continue
    dm, om = statistics.median(d["times"]), statistics.median(o["times"])
    dbest, obest = min(d["times"]), min(o["times"])
    node = {"inception-v3": "mixed6", "mobilenet-v2-mid": "expanded_conv_13/expand"}.get(name, "")
    print(f"| {name} ({node}) | {t} | {b} | {dm:.1f} | {om:.1f} | {1000*b/dm:.1f} | {1000*b/om:.1f} | **{dm/om:.2f}** | {dbest/obest:.2f} |")
print()
print("Peak RSS of the benchmarking process (MB; the ORT figure includes Node.js itself, about 50 MB with onnxruntime-node loaded):")
print()
print("| model | threads | batch | doppel | ORT |")
print("|---|---:|---:|---:|---:|")
for (name, t, b), c in sorted(cells.items()):
    if "doppel" in c and "ort" in c:
        print(f"| {name} | {t} | {b} | {c['doppel']['rss']/1024:.0f} | {c['ort']['rss']/1024:.0f} |")
EOF
cat "$TABLE"

if ((WRITE_DOCS)); then
  DOC=$ROOT/docs/benchmarks.md
  MARK=model-bench
  ((SPIN)) || MARK=model-bench-nospin
  "$PYTHON" - "$DOC" "$TABLE" "$MARK" <<'EOF'
import os, sys
doc, table = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
begin, end = f"<!-- {sys.argv[3]}:begin -->", f"<!-- {sys.argv[3]}:end -->"
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
block = f"{begin}\n{table}\n{end}"
if begin in text and end in text:
    a, b = text.index(begin), text.index(end) + len(end)
    text = text[:a] + block + text[b:]
else:
    text = text.rstrip("\n") + "\n\n## Model inference: doppel vs ONNX Runtime\n\n" + \
        f"Reproduce: `bash bench/model/run.sh --write-docs{' --no-spin' if 'nospin' in sys.argv[3] else ''}`\n\n" + block + "\n"
open(doc, "w").write(text)
EOF
  echo "bench: table written to docs/benchmarks.md" >&2
fi
