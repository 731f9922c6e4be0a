#!/usr/bin/env bash
# Build the bundled sample image set from the npm packages of emoji-datasource
# (Google's Noto emoji, Apache-2.0; Twitter's Twemoji, CC-BY-4.0), laid out
# Caltech-style: <out>/<label>/<name>.png, the parent folder being the label.
#
# Why emoji: every emoji is drawn by several vendors, so "which images look
# alike" has a ground truth no one has to argue about (Google's fox and
# Twitter's fox are the same thing drawn by different artists), and the
# categories (animals, food, flags, faces, ...) give a coarser one.
#
#   tools/make_samples.sh                      # samples/: 150 emoji x 2 vendors, label = category
#   tools/make_samples.sh --out samples-eval --count 1000 --label emoji
#                                              # samples-eval/<emoji>/<vendor>.png for retrieval eval
#
# Options: --out DIR (samples), --count N emoji (150), --label category |
# subcategory | emoji (category), --vendors LIST (google,twitter; apple and
# facebook exist too, with less clear image licences), --size PX (64, the
# only size the packages ship as single files).
#
# Idempotent: downloads go to .cache/emoji/ (npm pack, once); the output is
# rebuilt only when the options change, into a temp dir renamed at the end.
set -euo pipefail

VERSION=16.0.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=samples
COUNT=150
LABEL=category
VENDORS=google,twitter
SIZE=64

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --count) COUNT=$2; shift 2 ;;
    --label) LABEL=$2; shift 2 ;;
    --vendors) VENDORS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "make_samples: unknown option $1" >&2; usage 2 ;;
  esac
done
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || { echo "make_samples: --count must be a positive integer" >&2; exit 2; }
case "$LABEL" in category|subcategory|emoji) ;; *) echo "make_samples: bad --label $LABEL" >&2; exit 2 ;; esac
for t in node npm tar; do
  command -v "$t" >/dev/null || { echo "make_samples: needs $t (scripts/deps.sh installs it)" >&2; exit 1; }
done

[[ $OUT = /* ]] || OUT=$PWD/$OUT
CACHE=$ROOT/.cache/emoji
STAMP="emoji-datasource $VERSION vendors=$VENDORS count=$COUNT label=$LABEL size=$SIZE"

summary() {
  local dir=$1
  echo "make_samples: $dir: $(find "$dir" -name '*.png' | wc -l) images in $(find "$dir" -mindepth 1 -maxdepth 1 -type d | wc -l) labels ($STAMP)"
  find "$dir" -name '*.png' | sed "s#^$dir/##; s#/.*##" | sort | uniq -c | sort -rn | awk 'NR <= 12' |
    awk '{printf "  %5d  %s\n", $1, $2}'
}

if [[ -f $OUT/.make_samples && "$(cat "$OUT/.make_samples")" == "$STAMP" ]]; then
  echo "make_samples: $OUT is up to date"
  summary "$OUT"
  exit 0
fi
if [[ -e $OUT && ! -f $OUT/.make_samples ]] && [[ -n "$(ls -A "$OUT" 2>/dev/null)" ]]; then
  echo "make_samples: $OUT exists and was not made by this script; not touching it" >&2
  exit 1
fi

# Fetch and unpack each vendor's package once.
mkdir -p "$CACHE"
IFS=, read -r -a vlist <<<"$VENDORS"
for v in "${vlist[@]}"; do
  [[ $v =~ ^(apple|google|twitter|facebook)$ ]] || { echo "make_samples: unknown vendor $v" >&2; exit 2; }
  pkg=emoji-datasource-$v
  tgz=$CACHE/$pkg-$VERSION.tgz
  if [[ ! -f $tgz ]]; then
    echo "make_samples: npm pack $pkg@$VERSION" >&2
    (cd "$CACHE" && npm pack --silent "$pkg@$VERSION" >/dev/null)
    [[ -f $tgz ]] || { echo "make_samples: npm pack did not produce $tgz" >&2; exit 1; }
  fi
  dir=$CACHE/$v
  if [[ ! -f $dir/.unpacked-$VERSION-$SIZE ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    tar xzf "$tgz" -C "$dir" package/emoji.json package/LICENSE package/README.md "package/img/$v/$SIZE" ||
      { echo "make_samples: $tgz has no img/$v/$SIZE" >&2; exit 1; }
    touch "$dir/.unpacked-$VERSION-$SIZE"
  fi
done

TMP=$OUT.tmp.$$
trap 'rm -rf "$TMP"' EXIT
rm -rf "$TMP"
mkdir -p "$TMP"
node "$ROOT/tools/samples/select.js" "$CACHE/${vlist[0]}/package/emoji.json" "$CACHE" "$COUNT" \
  "$LABEL" "$VENDORS" "$SIZE" >"$TMP/.list"
while IFS=$'\t' read -r src dst; do
  mkdir -p "$TMP/$(dirname "$dst")"
  cp "$src" "$TMP/$dst"
done <"$TMP/.list"
rm -f "$TMP/.list"
{
  echo "Images from the npm packages emoji-datasource-{$VENDORS}@$VERSION."
  echo "Google/Noto emoji: Apache License 2.0. Twitter/Twemoji graphics: CC-BY 4.0."
  echo "Apple and Facebook images, if present, belong to their owners (see the package README)."
} >"$TMP/SOURCE.txt"
echo "$STAMP" >"$TMP/.make_samples"

if [[ -e $OUT ]]; then rm -rf "$OUT"; fi # made by us (checked above)
mv "$TMP" "$OUT"
trap - EXIT
summary "$OUT"
