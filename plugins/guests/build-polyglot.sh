#!/usr/bin/env bash
# Builds the JavaScript or the Python reference adapter (dispenser-js, dispenser-py) from
# source with the registries' own toolchains, into a cache keyed by the sources, the
# lockfiles, the WIT and this script:
#
#   plugins/guests/build-polyglot.sh js|py <out-dir>
#
# prints the component's path as its last line of stdout. <out-dir> is a folder inside a
# target directory (the host's tests use <target>/polyglot); the toolchains are installed
# there too, never in the source tree (npm ci runs in a copy of package.json and
# package-lock.json; Python gets a venv). A warm run with unchanged inputs only hashes them.
#
# Exit status 3 means the toolchain could not be installed (no node/npm or python3, or no
# network to reach the registries): the tests report SKIPPED. Any other failure is a real
# build error.
#
# Times of each step go to stderr and, for a fresh build, to <cache>/<lang>-times.txt.
set -euo pipefail

lang="${1:?usage: build-polyglot.sh js|py <out-dir>}"
out="${2:?usage: build-polyglot.sh js|py <out-dir>}"
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../schema/wit/device-v2"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

skip() {
  echo "toolchain unavailable: $*" >&2
  exit 3
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

case "$lang" in
  js)
    src="$here/dispenser-js"
    inputs=("$src/adapter.js" "$src/package.json" "$src/package-lock.json")
    name=dispenser_js
    ;;
  py)
    src="$here/dispenser-py"
    inputs=("$src/app.py" "$src/requirements.txt")
    name=dispenser_py
    ;;
  *)
    echo "unknown language $lang (js or py)" >&2
    exit 2
    ;;
esac

# One build at a time per language: test binaries (host tests, e2e) may ask at once.
# (`flock` is util-linux's; without it, e.g. on macOS, builds are not serialised.)
exec 9>"$out/.$lang.lock"
if command -v flock >/dev/null; then flock 9; fi

sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }
key="$(cat "${inputs[@]}" "$wit"/*.wit "$here/build-polyglot.sh" | sha256 | cut -c1-16)"
cache="$out/$name-$key"
if [ -f "$cache/$name.wasm" ]; then
  echo "$cache/$name.wasm"
  exit 0
fi

toolchain_start="$(now)"
case "$lang" in
  js)
    command -v node >/dev/null && command -v npm >/dev/null || skip "node and npm are not installed"
    tools="$out/js-toolchain"
    mkdir -p "$tools"
    # npm ci again only when the lockfile changed.
    if ! cmp -s "$src/package-lock.json" "$tools/package-lock.json" || [ ! -d "$tools/node_modules" ]; then
      cp "$src/package.json" "$src/package-lock.json" "$tools/"
      npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error >&2 || {
        rm -f "$tools/package-lock.json"
        skip "npm ci failed (no network to registry.npmjs.org?)"
      }
    fi
    ;;
  py)
    command -v python3 >/dev/null || skip "python3 is not installed"
    tools="$out/py-toolchain"
    if ! cmp -s "$src/requirements.txt" "$tools/requirements.txt"; then
      rm -rf "$tools"
      python3 -m venv "$tools" >&2 || skip "python3 -m venv failed (Debian: apt-get install python3-venv)"
      "$tools/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$src/requirements.txt" >&2 || {
        rm -rf "$tools"
        skip "pip install componentize-py failed (no network to pypi.org?)"
      }
      cp "$src/requirements.txt" "$tools/requirements.txt"
    fi
    ;;
esac
toolchain_s="$(since "$toolchain_start")"

build_start="$(now)"
work="$(mktemp -d "$out/.build-$lang-XXXXXX")"
trap 'rm -rf "$work"' EXIT
case "$lang" in
  js)
    # QuickJS with the synchronous runtime (the host has no component-model async), every
    # WASI import replaced by a trap (the sandbox grants nothing).
    cp "$src/adapter.js" "$work/"
    (cd "$work" && "$tools/node_modules/.bin/jco" componentize adapter.js \
      --wit "$wit" --world-name device-adapter \
      --backend quickjs --backend-qjs-disable-async --backend-qjs-stub-wasi \
      -o "$work/$name.wasm") >&2
    ;;
  py)
    # From a copy, so no __pycache__ lands in the source tree; --stub-wasi because CPython
    # imports wasi:filesystem and wasi:sockets, which the sandbox refuses.
    cp "$src/app.py" "$work/"
    (cd "$work" && PYTHONDONTWRITEBYTECODE=1 "$tools/bin/componentize-py" \
      --wit-path "$wit" --world device-adapter componentize app --stub-wasi \
      -o "$work/$name.wasm") >&2
    ;;
esac
build_s="$(since "$build_start")"

mkdir -p "$work/out"
mv "$work/$name.wasm" "$work/out/"
printf 'toolchain_install_s=%s\nbuild_s=%s\n' "$toolchain_s" "$build_s" >"$work/out/$lang-times.txt"
# Only the newest build is kept: an old one is never asked for again, and each Python one is 18 MB.
rm -rf "$out/$name"-*
mv "$work/out" "$cache"
echo "$lang: toolchain ${toolchain_s} s, build ${build_s} s" >&2
echo "$cache/$name.wasm"
