#!/usr/bin/env bash
# Installs every Debian package the project needs. Idempotent: when all
# packages are present it changes nothing and does not touch the network.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config make gcc clang libclang-rt-14-dev libfuzzer-14-dev
  nginx-core nginx-dev libnginx-mod-stream libssl-dev libpcre3-dev zlib1g-dev
  mariadb-server mariadb-client libmariadbd-dev libmariadb-dev
  redis-server libhiredis-dev
  libjansson-dev libcurl4-openssl-dev libpq-dev libmicrohttpd-dev
  postgresql postgresql-client
  libcmocka-dev sysbench
  python3-pymysql python3-pytest
  curl procps iproute2 psmisc
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
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
echo "deps: done"
