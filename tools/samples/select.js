// Pick emoji for the sample and evaluation sets from emoji-datasource's
// emoji.json and print "<src>\t<dst>" lines for make_samples.sh to copy.
//
// The pick is deterministic and spread over the ~100 subcategories (round
// robin in Unicode order), so 150 emoji are not 150 country flags.
//
// usage: node select.js EMOJI_JSON CACHE_DIR COUNT LABEL VENDORS SIZE
//   LABEL: category | subcategory | emoji
//   VENDORS: comma-separated, e.g. google,twitter
'use strict';
const fs = require('fs');
const path = require('path');

const [jsonPath, cacheDir, countArg, label, vendorArg, size] = process.argv.slice(2);
const count = parseInt(countArg, 10);
const vendors = vendorArg.split(',').filter(Boolean);
if (!jsonPath || !cacheDir || !(count > 0) || !vendors.length ||
    !['category', 'subcategory', 'emoji'].includes(label)) {
  console.error('select.js: bad arguments');
  process.exit(2);
}

const slug = (s) => s.toLowerCase().replace(/&/g, 'and').replace(/[^a-z0-9+]+/g, '-')
  .replace(/^-+|-+$/g, '');
const src = (v, e) => path.join(cacheDir, v, 'package', 'img', v, size, e.image);

const all = JSON.parse(fs.readFileSync(jsonPath, 'utf8'))
  .filter((e) => e.category !== 'Component')
  .filter((e) => vendors.every((v) => e['has_img_' + v] && fs.existsSync(src(v, e))))
  .sort((a, b) => a.sort_order - b.sort_order);

// Round robin over subcategories in Unicode order.
const groups = new Map();
for (const e of all) {
  const k = e.category + '/' + e.subcategory;
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k).push(e);
}
const picked = [];
for (let round = 0; picked.length < count; round++) {
  let any = false;
  for (const g of groups.values()) {
    if (round < g.length && picked.length < count) {
      picked.push(g[round]);
      any = true;
    }
  }
  if (!any) break;
}
picked.sort((a, b) => a.sort_order - b.sort_order);

for (const e of picked) {
  const name = slug(e.short_name);
  for (const v of vendors) {
    let dst;
    if (label === 'emoji') dst = path.join(name, v + '.png');
    else dst = path.join(slug(label === 'category' ? e.category : e.subcategory),
                         name + '-' + v + '.png');
    process.stdout.write(src(v, e) + '\t' + dst + '\n');
  }
}
if (picked.length < count)
  console.error(`select.js: only ${picked.length} emoji have images from ${vendors.join(', ')}`);
