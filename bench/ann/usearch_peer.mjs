// Peer driver: usearch (npm usearch@2.26.2, its prebuilt N-API addon with
// run-time SIMD dispatch) on the same .fvecs data and ground truth as
// `doppel bench`, printing the same CSV columns. Build with connectivity M
// and expansion_add on N threads; then, per expansion_search of the sweep,
// single-threaded batch-1 queries (queries/s from this process's CPU time,
// the machine being shared) and the same queries as one batch over all
// threads. The JS API fixes expansion_search at construction, so the built
// index is saved once and loaded into a fresh Index per sweep point; bytes
// is the saved file's size and peak_rss_mb this process's peak up to the end
// of the build (later reloads would double-count the graph until the old
// copy is collected). Recall as doppel bench: a returned id counts if its
// exact distance is within the k-th true distance + 1e-3 (ann-benchmarks'
// knn metric), recall_ids the strict overlap. Each query crosses from JS
// into C++ (about a microsecond, included: it is how Node users call it).
//
//   node usearch_peer.mjs MODULE_DIR BASE.fvecs QUERY.fvecs GT.ivecs NAME \
//        [M expansion_add threads ef,ef,... [euclidean|angular [batch_threads [WORKDIR]]]]
import { createRequire } from 'node:module';
import { readFileSync, statSync, unlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';

const argv = process.argv.slice(2);
if (argv.length < 5) {
    console.error('usage: node usearch_peer.mjs MODULE_DIR BASE.fvecs QUERY.fvecs GT.ivecs NAME ' +
                  '[M expansion_add threads efs [metric [batch_threads [WORKDIR]]]]');
    process.exit(2);
}
const [moduleDir, baseF, queryF, gtF, name] = argv;
const M = Number(argv[5] ?? 16), efc = Number(argv[6] ?? 200), threads = Number(argv[7] ?? 2);
const efs = (argv[8] ?? '10,16,24,32,48,64,96,128,192,256,512').split(',').map(Number).filter((x) => x > 0);
const angular = argv[9] === 'angular';
const bthreads = Number(argv[10] ?? availableParallelism());
const workdir = argv[11] ?? tmpdir();
const usearch = createRequire(path.join(path.resolve(moduleDir), 'package.json'))('usearch');
const k = 10;

// TEXMEX: per row an int32 width, then the row; rows must agree
function readVecs(file, Type) {
    const buf = readFileSync(file);
    if (buf.length < 4) throw new Error(`${file}: empty`);
    const d = buf.readInt32LE(0), rec = 4 + 4 * d;
    if (d < 1 || d > 65536 || buf.length % rec) throw new Error(`${file}: not a TEXMEX file of ${d}-wide rows`);
    const n = buf.length / rec, out = new Type(n * d);
    const all = new Type(buf.buffer, buf.byteOffset, buf.length / 4);
    for (let i = 0; i < n; i++) {
        if (buf.readInt32LE(i * rec) !== d) throw new Error(`${file}: row ${i} has another width`);
        out.set(all.subarray(i * (d + 1) + 1, (i + 1) * (d + 1)), i * d);
    }
    return { n, d, v: out };
}

function dist(a, ao, b, bo, d) {
    let s = 0, aa = 0, bb = 0;
    for (let j = 0; j < d; j++) {
        if (angular) {
            s += a[ao + j] * b[bo + j];
            aa += a[ao + j] * a[ao + j];
            bb += b[bo + j] * b[bo + j];
        } else {
            const t = a[ao + j] - b[bo + j];
            s += t * t;
        }
    }
    return angular ? (aa > 0 && bb > 0 ? 1 - s / Math.sqrt(aa * bb) : 1) : Math.sqrt(s);
}

const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) * 1e-6; };
const wall = () => performance.now() * 1e-3;
const rssMb = () => process.resourceUsage().maxRSS / 1024;

const X = readVecs(baseF, Float32Array), Q = readVecs(queryF, Float32Array), G = readVecs(gtF, Int32Array);
const n = X.n, d = X.d, nq = Q.n, gk = G.d;
if (Q.d !== d || G.n !== nq || gk < k) throw new Error('base, queries and ground truth do not fit');
// Float64 from the float32 rows, as the C drivers compute in double
const thr = new Float64Array(nq);
for (let i = 0; i < nq; i++) {
    const g = G.v[i * gk + k - 1];
    if (g < 0 || g >= n) throw new Error(`ground truth names row ${g} of ${n}`);
    thr[i] = dist(Q.v, i * d, X.v, g * d, d) + 1e-3;
}

// normalised rows (angular sets): l2sq ranks as cosine does
const config = (ef) => ({ dimensions: d, metric: 'l2sq', quantization: 'f32', connectivity: M,
                          expansion_add: efc, expansion_search: ef, multi: false });
const keys = new BigUint64Array(n);
for (let i = 0; i < n; i++) keys[i] = BigInt(i);
let index = new usearch.Index(config(efs[0] ?? 64));
const w0 = wall(), c0 = cpu();
index.add(keys, X.v, threads);
const bw = wall() - w0, bc = cpu() - c0;
const rss = rssMb();
const file = path.join(workdir, `usearch-${process.pid}.usearch`);
index.save(file);
const bytes = statSync(file).size;
index = null;
console.error(`usearch built ${n} x ${d} in ${bw.toFixed(1)} s (${bc.toFixed(1)} CPU-s), ${bytes} bytes`);

const lat = new Float64Array(nq);
for (const ef of efs) {
    const ix = new usearch.Index(config(ef));
    ix.load(file);
    for (let i = 0; i < Math.min(50, nq); i++) ix.search(Q.v.subarray(i * d, (i + 1) * d), k, 1);
    let hit = 0, tie = 0;
    const cs = cpu(), ws = wall();
    for (let i = 0; i < nq; i++) {
        const t = performance.now();
        const r = ix.search(Q.v.subarray(i * d, (i + 1) * d), k, 1);
        lat[i] = (performance.now() - t) * 1e-3;
        for (let m = 0; m < r.keys.length; m++) {
            const id = Number(r.keys[m]);
            if (id >= n) continue; // usearch pads short answers with a sentinel key
            for (let j = 0; j < k; j++) if (G.v[i * gk + j] === id) { hit++; break; }
            if (dist(Q.v, i * d, X.v, id * d, d) <= thr[i]) tie++;
        }
    }
    const ct = cpu() - cs, wt = wall() - ws;
    lat.sort();
    let qb = 0;
    if (bthreads > 0) {
        const bs = wall();
        ix.search(Q.v, k, bthreads);
        qb = nq / (wall() - bs);
    }
    console.log([
        'usearch', name, `M=${M} efc=${efc}`, `ef=${ef}`, (tie / (nq * k)).toFixed(4), (nq / ct).toFixed(0),
        (nq / wt).toFixed(0), (lat[nq >> 1] * 1e6).toFixed(1), (lat[Math.floor(0.99 * (nq - 1))] * 1e6).toFixed(1),
        bw.toFixed(1), bc.toFixed(1), bytes, (hit / (nq * k)).toFixed(4), qb.toFixed(0), bthreads, rss.toFixed(1),
    ].join(','));
}
unlinkSync(file);
