// Turn nsfwjs's bundled TFJS model (model.min.js exporting the model.json
// object, group1-shardKofN.min.js each exporting one base64 string) back into
// the standard TFJS layout: model.json + binary shard files named as the
// weightsManifest expects. Usage: node unbundle.cjs <bundle dir> <out dir>
'use strict';
const fs = require('fs');
const path = require('path');

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  console.error('usage: node unbundle.cjs <bundle dir> <out dir>');
  process.exit(2);
}
const model = require(path.resolve(src, 'model.min.js'));
if (!model || typeof model !== 'object' || !model.modelTopology || !model.weightsManifest) {
  console.error(`${src}/model.min.js: not a TFJS model (no modelTopology/weightsManifest)`);
  process.exit(1);
}
fs.mkdirSync(dst, { recursive: true });
for (const group of model.weightsManifest) {
  for (const p of group.paths) {
    const js = path.resolve(src, p + '.min.js');
    const b64 = require(js);
    if (typeof b64 !== 'string') {
      console.error(`${js}: expected a base64 string export`);
      process.exit(1);
    }
    fs.writeFileSync(path.join(dst, p), Buffer.from(b64, 'base64'));
  }
}
fs.writeFileSync(path.join(dst, 'model.json'), JSON.stringify(model));
