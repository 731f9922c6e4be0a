// Three implementations, one set of weights, the same input tensors:
//   tfjs   the ORIGINAL TensorFlow.js model (the weights as nsfwjs ships them),
//          run by @tensorflow/tfjs with the wasm (or cpu) backend;
//   ort    the converted ONNX model, run by onnxruntime-node;
//   doppel the converted ONNX model, run by doppel's C engine (its outputs are
//          written by dp_run_tensors and passed in as .npy files).
// For the embedding node and the classifier output, every pair must agree per
// image with cosine >= --min-cos and max |a-b| <= --max-rel * max |tfjs|.
//
// node compare.cjs --sidecar models/NAME.json --tfjs DIR --onnx VARIANT.onnx
//   --tensors X.npy [--doppel-embedding E.npy] [--doppel-output O.npy]
//   [--backend wasm|cpu] [--threads N] [--report FILE.json]
// VARIANT.onnx must expose the embedding node as a graph output
// (tools/models/onnx_outputs.py). Exit 0 = all pairs agree, 1 = mismatch,
// 2 = usage or setup error.
'use strict';
const fs = require('fs');
const path = require('path');
const { readNpy } = require('./npy.cjs');

function parseArgs(argv) {
  const a = { backend: 'wasm', threads: 1, batch: 4, minCos: 0.99999, maxRel: 1e-4 };
  const keys = {
    '--sidecar': 'sidecar', '--tfjs': 'tfjs', '--onnx': 'onnx', '--tensors': 'tensors',
    '--doppel-embedding': 'dpEmb', '--doppel-output': 'dpOut', '--backend': 'backend',
    '--threads': 'threads', '--batch': 'batch', '--report': 'report', '--min-cos': 'minCos',
    '--max-rel': 'maxRel',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = keys[argv[i]];
    if (!k || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    a[k] = ['threads', 'batch', 'minCos', 'maxRel'].includes(k) ? Number(argv[i + 1]) : argv[i + 1];
  }
  for (const k of ['sidecar', 'tfjs', 'onnx', 'tensors']) {
    if (!a[k]) throw new Error(`missing --${k}`);
  }
  return a;
}

async function loadTfjs(tf, dir) {
  const mj = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const specs = mj.weightsManifest.flatMap((g) => g.weights);
  const bin = Buffer.concat(mj.weightsManifest.flatMap(
    (g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const handler = tf.io.fromMemory({
    modelTopology: mj.modelTopology, weightSpecs: specs, weightData, format: mj.format,
    generatedBy: mj.generatedBy, convertedBy: mj.convertedBy,
    userDefinedMetadata: mj.userDefinedMetadata,
  });
  if (mj.format === 'graph-model' || mj.modelTopology.node) {
    return { kind: 'graph', model: await tf.loadGraphModel(handler) };
  }
  return { kind: 'layers', model: await tf.loadLayersModel(handler) };
}

// Run the TFJS model on NCHW tensors; returns [embedding NCHW, output] as
// Float32Arrays over the whole batch.
async function runTfjs(tf, m, sidecar, x, batch) {
  const [n, c, h, w] = x.shape;
  const per = c * h * w;
  const emb = [];
  const out = [];
  let embShape = null;
  let outShape = null;
  let fn;
  if (m.kind === 'layers') {
    const sub = tf.model({
      inputs: m.model.inputs,
      outputs: [m.model.getLayer(sidecar.embedding.source_node).output, m.model.outputs[0]],
    });
    fn = (t) => sub.predict(t);
  } else {
    const outName = m.model.outputNodes[0];
    fn = (t) => m.model.execute(t, [sidecar.embedding.source_node, outName]);
  }
  for (let i = 0; i < n; i += batch) {
    const b = Math.min(batch, n - i);
    const res = tf.tidy(() => {
      const t = tf.tensor4d(x.data.subarray(i * per, (i + b) * per), [b, c, h, w])
        .transpose([0, 2, 3, 1]);
      const [e, o] = fn(t);
      return [e.transpose([0, 3, 1, 2]), o];
    });
    embShape = res[0].shape;
    outShape = res[1].shape;
    emb.push(await res[0].data());
    out.push(await res[1].data());
    tf.dispose(res);
  }
  return {
    embedding: { shape: [n, ...embShape.slice(1)], data: concat(emb) },
    output: { shape: [n, ...outShape.slice(1)], data: concat(out) },
  };
}

async function runOrt(ort, file, sidecar, x, threads) {
  const sess = await ort.InferenceSession.create(file, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const embName = sidecar.embedding.node;
  const outName = sidecar.outputs[0].name;
  for (const nm of [embName, outName]) {
    if (!sess.outputNames.includes(nm)) {
      throw new Error(`${file}: no graph output ${nm} (outputs: ${sess.outputNames.join(', ')})`);
    }
  }
  const t = new ort.Tensor('float32', x.data, x.shape);
  const r = await sess.run({ [sess.inputNames[0]]: t }, [embName, outName]);
  return {
    embedding: { shape: r[embName].dims.map(Number), data: r[embName].data },
    output: { shape: r[outName].dims.map(Number), data: r[outName].data },
  };
}

function concat(parts) {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// Per image: cosine and max|a-b| / max|ref| of the flattened tensor, plus the
// cosine of the spatially average-pooled embedding (what doppel indexes).
function compare(ref, got, pool) {
  if (ref.shape.join() !== got.shape.join()) {
    return { error: `shape [${got.shape}] vs reference [${ref.shape}]` };
  }
  const n = ref.shape[0];
  const per = ref.data.length / n;
  let worstCos = 1;
  let worstRel = 0;
  let worstPooledCos = 1;
  for (let i = 0; i < n; i++) {
    const a = ref.data.subarray(i * per, (i + 1) * per);
    const b = got.data.subarray(i * per, (i + 1) * per);
    let dot = 0;
    let na = 0;
    let nb = 0;
    let maxRef = 0;
    let maxErr = 0;
    for (let j = 0; j < per; j++) {
      if (!Number.isFinite(b[j])) return { error: `image ${i}: non-finite value at ${j}` };
      dot += a[j] * b[j];
      na += a[j] * a[j];
      nb += b[j] * b[j];
      maxRef = Math.max(maxRef, Math.abs(a[j]));
      maxErr = Math.max(maxErr, Math.abs(a[j] - b[j]));
    }
    const cos = na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb);
    worstCos = Math.min(worstCos, cos);
    worstRel = Math.max(worstRel, maxRef > 0 ? maxErr / maxRef : maxErr);
    if (pool && ref.shape.length === 4) {
      const c = ref.shape[1];
      const hw = per / c;
      const pa = new Float64Array(c);
      const pb = new Float64Array(c);
      for (let k = 0; k < c; k++) {
        for (let j = 0; j < hw; j++) {
          pa[k] += a[k * hw + j];
          pb[k] += b[k * hw + j];
        }
      }
      let d = 0;
      let x = 0;
      let y = 0;
      for (let k = 0; k < c; k++) {
        d += pa[k] * pb[k];
        x += pa[k] * pa[k];
        y += pb[k] * pb[k];
      }
      worstPooledCos = Math.min(worstPooledCos, x === 0 && y === 0 ? 1 : d / Math.sqrt(x * y));
    }
  }
  return { cos: worstCos, rel: worstRel, pooledCos: worstPooledCos };
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`compare: ${e.message}`);
    process.exit(2);
  }
  const sidecar = JSON.parse(fs.readFileSync(args.sidecar, 'utf8'));
  const x = readNpy(args.tensors);
  if (x.shape.length !== 4 || x.shape[1] !== 3 || x.shape[2] !== sidecar.input.height ||
      x.shape[3] !== sidecar.input.width) {
    throw new Error(`${args.tensors}: shape [${x.shape}] does not fit ${args.sidecar}`);
  }
  const tf = require('@tensorflow/tfjs');
  if (args.backend === 'wasm') {
    const wasm = require('@tensorflow/tfjs-backend-wasm');
    wasm.setThreadsCount?.(args.threads);
  }
  await tf.setBackend(args.backend);
  await tf.ready();
  const ort = require('onnxruntime-node');

  const results = {};
  let t0 = Date.now();
  const m = await loadTfjs(tf, args.tfjs);
  results.tfjs = await runTfjs(tf, m, sidecar, x, args.batch);
  const tTfjs = (Date.now() - t0) / 1000;
  t0 = Date.now();
  results.ort = await runOrt(ort, args.onnx, sidecar, x, args.threads);
  const tOrt = (Date.now() - t0) / 1000;
  if (args.dpEmb) {
    results.doppel = { embedding: readNpy(args.dpEmb) };
    if (args.dpOut) results.doppel.output = readNpy(args.dpOut);
  }
  console.log(`${sidecar.name}: ${x.shape[0]} images ${x.shape[3]}x${x.shape[2]}, embedding ` +
    `${sidecar.embedding.node} [${results.tfjs.embedding.shape.slice(1)}], output ` +
    `${sidecar.outputs[0].name}; tfjs ${tf.version.tfjs} (${tf.getBackend()}) ${tTfjs.toFixed(1)} s, ` +
    `onnxruntime-node ${ort.env.versions.node} ${tOrt.toFixed(1)} s`);
  const pairs = [['tfjs', 'ort']];
  if (results.doppel) pairs.push(['tfjs', 'doppel'], ['ort', 'doppel']);
  const report = { model: sidecar.name, images: x.shape[0], minCos: args.minCos,
    maxRel: args.maxRel, checks: [] };
  let ok = true;
  for (const [r, g] of pairs) {
    for (const what of ['embedding', 'output']) {
      if (!results[g][what]) continue;
      const c = compare(results[r][what], results[g][what], what === 'embedding');
      const pass = !c.error && c.cos >= args.minCos && c.rel <= args.maxRel;
      ok = ok && pass;
      report.checks.push({ ref: r, got: g, what, ...c, pass });
      const detail = c.error ? c.error :
        `worst 1-cosine ${(1 - c.cos).toExponential(2)}, worst max|err|/max|ref| ` +
        `${c.rel.toExponential(2)}` +
        (what === 'embedding' ? `, worst pooled 1-cosine ${(1 - c.pooledCos).toExponential(2)}` : '');
      console.log(`  ${pass ? 'ok  ' : 'FAIL'} ${g} vs ${r} ${what}: ${detail}`);
    }
  }
  if (args.report) fs.writeFileSync(args.report, JSON.stringify(report, null, 2));
  if (!results.doppel) console.log('  (doppel outputs not given: only tfjs vs ort checked)');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(`compare: ${e.stack || e}`);
  process.exit(2);
});
