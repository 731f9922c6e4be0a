#!/usr/bin/env bash
# Build a labelled evaluation dataset from registry packages, in the
# Caltech-101 layout (ROOT/<class>/<image>) plus ROOT/manifest.tsv with one
# line per image: path (relative to ROOT), class, instance id, source.
#
#   tools/datasets/build.sh emoji-vendors [--out DIR]   # default out/datasets/emoji-vendors
#   tools/datasets/build.sh openclipart   [--out DIR]   # default out/datasets/openclipart
#
# emoji-vendors  the same emoji drawn by Apple, Google, Twitter, Facebook
#                (npm emoji-datasource-* 16.0.0, 64 px PNGs) and OpenMoji
#                (npm openmoji 17.0.0, SVG rendered with rsvg-convert);
#                class = CLDR subcategory, instance = code point sequence,
#                transparency flattened onto white.
# openclipart    Debian's openclipart-png; class = category folder holding
#                at least 20 images (regular files; Debian's symlinked
#                duplicates are left out), at most 100 per class, picked by
#                SHA-256 of the file name so the cap is not alphabetical.
#
# See tools/datasets/<name>/README.md for counts and licences. The output is
# deterministic: the same packages give byte-identical manifests (the run
# prints the manifest's SHA-256). Downloads are cached in .cache/ (npm pack,
# once); missing Debian tools (librsvg2-bin, python3-pil, openclipart-png)
# are installed with apt-get. The output is built in DIR.tmp.PID and renamed
# at the end; an existing DIR is replaced only if this script made it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tools/datasets
PY=/usr/bin/python3 # Debian's, with PIL; pyenv's python has no packages

usage() { sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
NAME=
OUT=
while (($#)); do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; usage 2 ;;
    *) [[ -z $NAME ]] || { echo "build.sh: one dataset at a time" >&2; exit 2; }; NAME=$1; shift ;;
  esac
done
case "$NAME" in
  emoji-vendors|openclipart) ;;
  "") echo "build.sh: which dataset? emoji-vendors or openclipart" >&2; usage 2 ;;
  *) echo "build.sh: unknown dataset '$NAME' (emoji-vendors, openclipart)" >&2; exit 2 ;;
esac
OUT=${OUT:-$ROOT/out/datasets/$NAME}
[[ $OUT = /* ]] || OUT=$PWD/$OUT

# apt-get install the packages whose command/file is missing.
need_apt() {
  local missing=()
  while (($#)); do
    local test=$1 pkg=$2
    shift 2
    if [[ $test = /* ]]; then [[ -e $test ]] || missing+=("$pkg")
    else command -v "$test" >/dev/null || missing+=("$pkg"); fi
  done
  ((${#missing[@]})) || return 0
  echo "build.sh: installing ${missing[*]} with apt-get" >&2
  local sudo=
  ((EUID == 0)) || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
}

# npm pack PKG@VER into .cache/emoji once and unpack the listed members.
fetch_npm() {
  local pkg=$1 ver=$2 dir=$3
  shift 3
  local cache=$ROOT/.cache/emoji tgz=$ROOT/.cache/emoji/$pkg-$ver.tgz
  mkdir -p "$cache"
  if [[ ! -f $tgz ]]; then
    command -v npm >/dev/null || { echo "build.sh: needs npm (scripts/deps.sh installs it)" >&2; exit 1; }
    echo "build.sh: npm pack $pkg@$ver" >&2
    (cd "$cache" && npm pack --silent "$pkg@$ver" >/dev/null)
    [[ -f $tgz ]] || { echo "build.sh: npm pack did not produce $tgz" >&2; exit 1; }
  fi
  local stamp=$dir/.unpacked-$ver-$(echo "$*" | sha256sum | cut -c1-12)
  if [[ ! -f $stamp ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    tar xzf "$tgz" -C "$dir" "$@" || { echo "build.sh: $tgz lacks one of: $*" >&2; exit 1; }
    touch "$stamp"
  fi
}

need_apt "$PY" python3 /usr/lib/python3/dist-packages/PIL python3-pil
TMP=$OUT.tmp.$$
trap 'rm -rf "$TMP"' EXIT
rm -rf "$TMP"
mkdir -p "$TMP"

case "$NAME" in
emoji-vendors)
  need_apt rsvg-convert librsvg2-bin
  EMOJI_VERSION=16.0.0
  OPENMOJI_VERSION=17.0.0
  # Same layout as tools/make_samples.sh's cache, so the two share downloads.
  for v in apple google twitter facebook; do
    d=$ROOT/.cache/emoji/$v
    if [[ ! -f $d/.unpacked-$EMOJI_VERSION-64 ]]; then
      fetch_npm "emoji-datasource-$v" "$EMOJI_VERSION" "$d" package/emoji.json package/LICENSE \
        package/README.md "package/img/$v/64"
      touch "$d/.unpacked-$EMOJI_VERSION-64"
    fi
  done
  fetch_npm openmoji "$OPENMOJI_VERSION" "$ROOT/.cache/emoji/openmoji" package/color/svg \
    package/LICENSE.txt package/README.md
  "$PY" "$HERE/emoji-vendors/build.py" --cache "$ROOT/.cache/emoji" --out "$TMP" \
    --version "$EMOJI_VERSION" --openmoji-version "$OPENMOJI_VERSION"
  ;;
openclipart)
  need_apt /usr/share/openclipart/png openclipart-png
  "$PY" "$HERE/openclipart/build.py" --src /usr/share/openclipart/png --out "$TMP" \
    --min 20 --cap 100
  ;;
esac
cp "$HERE/$NAME/README.md" "$TMP/README.md"

if [[ -e $OUT ]]; then
  [[ -f $OUT/.doppel-dataset ]] || {
    echo "build.sh: $OUT exists and was not made by this script; not touching it" >&2
    exit 1
  }
  rm -rf "$OUT"
fi
echo "$NAME" >"$TMP/.doppel-dataset"
mv "$TMP" "$OUT"
trap - EXIT
n=$(($(wc -l <"$OUT/manifest.tsv") - 1))
classes=$(tail -n +2 "$OUT/manifest.tsv" | cut -f2 | sort -u | wc -l)
instances=$(tail -n +2 "$OUT/manifest.tsv" | cut -f3 | grep -v "^$" | sort -u | wc -l || true)
echo "build.sh: $OUT: $n images, $classes classes, $instances instances;" \
  "manifest sha256 $(sha256sum "$OUT/manifest.tsv" | cut -c1-16)"
