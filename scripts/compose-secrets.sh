#!/usr/bin/env bash
# The secrets of docker-compose.yml, created once (files that exist are
# kept; delete the directory for new ones):
#
#   scripts/compose-secrets.sh [DIR]     (default $SMDB_COMPOSE_DIR, else run/compose)
#
#   redis_password  the controller's Redis password (Redis keeps its SHA-256)
#   pg_password     PostgreSQL's password of the user smdb (scram-sha-256)
#   api_token       the controller's API token (smdbctl: SMDB_API_TOKEN)
#   wake_token      nginx's token for /wake_compute
#   ca.pem          a local CA (its key ca.key stays here, it signs nothing else)
#   server.pem, server.key   nginx's TLS certificate for 127.0.0.1 and localhost
#
# The directory is 0700: only its owner reaches the files.  The files
# themselves are readable (0644): compose bind-mounts each one into the
# containers that need it, where unprivileged users (redis, postgres, smdb,
# www-data) must read it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${SMDB_COMPOSE_DIR:-$ROOT/run/compose}}
die() { echo "compose-secrets: $*" >&2; exit 1; }

mkdir -p "$DIR"
chmod 700 "$DIR"
cd "$DIR"
umask 022

token() {  # NAME: 32 random alphanumerics, unless the file exists
  [ -s "$1" ] && return 0
  local v
  v=$(head -c 64 /dev/urandom | base64 -w 0 | LC_ALL=C tr -dc 'A-Za-z0-9')
  printf '%s\n' "${v:0:32}" > "$1.tmp"
  mv "$1.tmp" "$1"
}
for s in redis_password pg_password api_token wake_token; do token "$s"; done

if [ ! -s server.pem ] || [ ! -s server.key ] || [ ! -s ca.pem ]; then
  command -v openssl > /dev/null || die "openssl is needed for nginx's TLS certificate"
  ( umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=smdb compose CA" \
      -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:*.db.localhost\nextendedKeyUsage=serverAuth\n' \
      > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
      -extfile server.ext -out server.pem
    rm -f server.csr server.ext ca.srl ) > openssl.log 2>&1 || { cat openssl.log >&2; die "openssl failed"; }
  rm -f openssl.log
fi
chmod 644 redis_password pg_password api_token wake_token server.pem server.key ca.pem
echo "$DIR"
