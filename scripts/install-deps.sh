#!/usr/bin/env bash
# Installs every Debian package the project needs, on Debian 12 (bookworm)
# and 13 (trixie).  Idempotent: when all packages are present it changes
# nothing and does not touch the network.
#
# Names that differ between releases are written "a|b": the first one that
# is installed, or else the first one the apt lists know, is used.  The
# LLVM version (clang-N, libclang-rt-N-dev, libfuzzer-N-dev) follows the
# release's default clang: 14 on bookworm, 19 on trixie; other releases
# get the newest version their lists carry.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config make gcc
  "nginx-core|nginx" nginx-dev libnginx-mod-stream libssl-dev libpcre2-dev zlib1g-dev
  mariadb-server mariadb-client libmariadbd-dev libmariadb-dev
  redis-server libhiredis-dev
  libjansson-dev libcurl4-openssl-dev libpq-dev libmicrohttpd-dev
  postgresql postgresql-client
  libcmocka-dev sysbench
  # the connect benchmark's third baseline (bench/proxy_bench.py)
  haproxy
  python3-pymysql python3-pytest
  curl procps iproute2 psmisc
  debootstrap
  # containers (tests/containers): podman serves the Docker Engine API here
  podman runc netavark aardvark-dns docker-compose iptables
  # clients the e2e tests drive through the proxy (tests/e2e/test_clients.py)
  libdbd-mariadb-perl nodejs "npm|nodejs" openssl
)

# Node's MariaDB connectors come from the npm registry, into build/npm (the
# tests set NODE_PATH there); versions pinned to the majors the tests know.
# Only from a checkout (not from a copy of this script, e.g. inside the
# Debian 13 test root, where scripts/test-trixie.sh copies the host's tree:
# the packages are plain JavaScript).
NPM_DIR="$(cd "$(dirname "$0")/.." && pwd)/build/npm"
NPM_PACKAGES=(mysql2@3 mariadb@3 kubernetes-models@4)
npm_deps() {
  [ -f "$(dirname "$0")/../Makefile" ] || return 0
  [ "${SMDB_SKIP_NPM:-0}" = 1 ] && return 0
  [ -d "$NPM_DIR/node_modules/mysql2" ] && [ -d "$NPM_DIR/node_modules/mariadb" ] &&
    [ -d "$NPM_DIR/node_modules/kubernetes-models" ] && return 0
  command -v npm >/dev/null || { echo "deps: npm missing" >&2; return 1; }
  echo "deps: npm install ${NPM_PACKAGES[*]} into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error "${NPM_PACKAGES[@]}" >/dev/null
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
known() { apt-cache show "$1" >/dev/null 2>&1; }

# apt lists are read only when a name must be chosen among alternatives and
# none is installed yet; a fresh root (debootstrap, container) has no lists.
updated=0
refresh_lists() {
  [ $updated -eq 1 ] && return 0
  updated=1
  $SUDO apt-get update -q >/dev/null
}

# pick "a|b|c": the installed alternative, else the first known one.
pick() {
  local alt IFS='|'
  local -a alts
  read -r -a alts <<< "$1"
  for alt in "${alts[@]}"; do installed "$alt" && { echo "$alt"; return 0; }; done
  for pass in 0 1; do
    for alt in "${alts[@]}"; do known "$alt" && { echo "$alt"; return 0; }; done
    [ $pass -eq 0 ] && refresh_lists
  done
  echo "deps: none of '$1' is available in this release's apt lists" >&2
  return 1
}

# The LLVM major version whose clang, compiler-rt and libFuzzer to install.
llvm_version() {
  local id="" ver="" v
  [ -r /etc/os-release ] && { id=$(. /etc/os-release; echo "${ID:-}"); ver=$(. /etc/os-release; echo "${VERSION_ID:-}"); }
  if [ "$id" = debian ]; then
    case "$ver" in
      12) echo 14; return 0 ;;
      13) echo 19; return 0 ;;
    esac
  fi
  for v in 21 20 19 18 17 16 15 14; do installed "libfuzzer-$v-dev" && { echo "$v"; return 0; }; done
  for pass in 0 1; do
    for v in 21 20 19 18 17 16 15 14; do known "libfuzzer-$v-dev" && { echo "$v"; return 0; }; done
    [ $pass -eq 0 ] && refresh_lists
  done
  echo "deps: no libfuzzer-N-dev package in this release's apt lists" >&2
  return 1
}

llvm=$(llvm_version)
wanted=("clang-$llvm" "libclang-rt-$llvm-dev" "libfuzzer-$llvm-dev")
for spec in "${PACKAGES[@]}"; do
  if [[ "$spec" == *"|"* ]]; then wanted+=("$(pick "$spec")"); else wanted+=("$spec"); fi
done

missing=()
for p in "${wanted[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#wanted[@]} packages present"
  npm_deps
  exit 0
fi

echo "deps: installing ${missing[*]}"
refresh_lists
# Packaged services must not start on install: the project runs its own
# instances on private ports, and a system nginx/mariadb/redis on the default
# ports would only get in the way.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
npm_deps
echo "deps: done"
