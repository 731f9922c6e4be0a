// ONNX Runtime's side of bench/model/run.sh: the same measurement as
// dp_bench_model.c (same input, warmups, repetitions, JSON line out).
//
// node ort_bench.cjs MODEL.onnx --size WxH [--threads T] [--batch B]
//   [--warmup W] [--reps R] [--spin 0|1]
//
// Session: intraOpNumThreads T, interOpNumThreads 1, sequential execution,
// graphOptimizationLevel 'all' (ORT's full fusion set), CPU execution provider;
// --spin 0 turns off the intra-op pool's spin-waiting (ORT's default is on).
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const argv = process.argv.slice(2);
  const file = argv[0];
  const a = { threads: 1, batch: 1, warmup: 3, reps: 10, spin: 1 };
  let w = 0;
  let h = 0;
  for (let i = 1; i + 1 < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'size') [w, h] = argv[i + 1].split('x').map(Number);
    else if (k in a) a[k] = Number(argv[i + 1]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  if (!file || !(w > 0 && h > 0)) throw new Error('usage: MODEL.onnx --size WxH ...');
  const n = a.batch * 3 * w * h;
  const x = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s >>> 8) / 16777216;
  }
  let t0 = performance.now();
  const sess = await ort.InferenceSession.create(file, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', executionProviders: ['cpu'],
    extra: { session: { intra_op: { allow_spinning: a.spin ? '1' : '0' } } },
  });
  const openMs = performance.now() - t0;
  const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', x, [a.batch, 3, h, w]) };
  const times = [];
  for (let i = 0; i < a.warmup + a.reps; i++) {
    t0 = performance.now();
    await sess.run(feeds);
    if (i >= a.warmup) times.push(performance.now() - t0);
  }
  const sorted = [...times].sort((p, q) => p - q);
  const m = sorted.length;
  const median = m % 2 ? sorted[(m - 1) / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
  console.log(JSON.stringify({
    engine: 'ort', version: ort.env.versions.node, model: file, threads: a.threads,
    batch: a.batch, spin: a.spin, open_ms: +openMs.toFixed(1), times_ms: times.map((t) => +t.toFixed(3)),
    median_ms: +median.toFixed(3), peak_rss_kb: process.resourceUsage().maxRSS,
  }));
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message || e}`);
  process.exit(1);
});
