#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks and builds impactd. Idempotent: a second run
# installs nothing and rebuilds only what changed.
#
#   scripts/setup.sh release   -> build/      (optimised, what scripts/run.sh runs)
#   scripts/setup.sh asan      -> build-asan/ (ASan + UBSan, what scripts/test.sh runs)
#   scripts/setup.sh valgrind  -> build-valgrind/ (no sanitizers; unit tests run under valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-release}

packages=(
    build-essential cmake pkg-config git ca-certificates curl openssl
    libh2o-evloop-dev libwslay-dev libzmq3-dev libczmq-dev libmsgpack-dev libpq-dev libcurl4-openssl-dev
    libcmocka-dev libssl-dev libjansson-dev libargon2-dev libphonenumber-dev libprotobuf-dev python3-phonenumbers postgresql
    nghttp2-client wrk valgrind python3
    python3-yaml python3-matplotlib chromium nodejs npm
)

# Installed, or provided by an installed package (NodeSource's nodejs provides npm and conflicts
# with Debian's, which apt would otherwise try to swap in).
provided=$(dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null | awk '$1 == "ii" {$1 = ""; print}' |
    tr ',' '\n' | awk '{print $1}')
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || grep -qx "$p" <<<"$provided" ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

case "$flavour" in
    release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DIMPACT_SANITIZE=ON) ;;
    valgrind) dir=build-valgrind; flags=(-DCMAKE_BUILD_TYPE=Debug -DIMPACT_VALGRIND=ON) ;;
    *) echo "usage: $0 [release|asan|valgrind]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"

# The browser test's driver (tests/browser/node_modules, git-ignored): installed again only when
# package-lock.json is newer than the installed tree.
if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
    echo "setup: npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund)
fi
