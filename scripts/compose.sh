#!/usr/bin/env bash
# The platform as containers (docker-compose.yml), in two commands:
#
#   scripts/compose.sh up [OPTIONS]   secrets (once), images, start detached;
#                                     prints the demo project's mariadb command
#   scripts/compose.sh down           removes everything: services, computes,
#                                     networks, volumes (all data)
#   scripts/compose.sh ARGS...        any other docker-compose command, with
#                                     the same files and settings (ps, logs -f
#                                     nginx, exec controller smdbctl project list)
#
# What it adds to docker-compose:
#   up    scripts/compose-secrets.sh (tokens, passwords, a local CA and
#         nginx's certificate in SMDB_COMPOSE_DIR); builds the images,
#         the compute image too (a service that never runs: docker_image);
#         `up -d`; waits for the one-shot `demo` and prints its output, the
#         command.  OPTIONS go to `docker-compose up`.
#   down  stops nginx and the controller, removes the computes (containers and
#         volumes labelled smdb.prefix=$SMDB_DOCKER_PREFIX: the controller
#         made them through the Engine API, compose does not know them), then
#         `docker-compose down -v --remove-orphans`.  The secrets stay (the
#         next `up` reuses them); delete SMDB_COMPOSE_DIR for new ones.
#   all   the engine's socket (DOCKER_HOST=unix://..., else
#         /var/run/docker.sock) and its group, for the controller's container.
#
# Settings (environment; all optional):
#   DOCKER_HOST            the engine; podman: unix:///run/podman/podman.sock
#   COMPOSE_PROJECT_NAME   compose's project name (default: the directory's)
#   SMDB_LOCAL_IMAGES=1    no registry: also docker-compose.local.yml (Redis and
#                          PostgreSQL built from Debian), and bases default to
#                          scripts/container-base.sh's and images/mariadb's
#                          localhost/smdb-debian:bookworm, localhost/smdb-mariadb:bookworm
#   SMDB_DEBIAN            base of the controller and nginx images (debian:bookworm)
#   SMDB_MARIADB_IMAGE     base of the compute image (mariadb:11.8; 10.11 works too)
#   SMDB_COMPUTE_IMAGE     a compute image built already (images/README.md): the
#                          controller's docker_image, and none is built here
#   SMDB_REDIS_IMAGE, SMDB_POSTGRES_IMAGE   (redis:7, postgres:15)
#   SMDB_TAG               tag of the images built here (latest)
#   SMDB_PORT              MySQL port on the host's 127.0.0.1 (3306)
#   SMDB_API_PORT          the controller's API on the host's 127.0.0.1 (8480)
#   SMDB_DOCKER_PREFIX     names and label of the computes (smdb)
#   SMDB_NETWORK           the computes' network (smdb)
#   SMDB_SUBNET_PREFIX     its /24, as three octets (10.213.0)
#   SMDB_COMPOSE_DIR       the secrets (run/compose)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
die() { echo "compose: $*" >&2; exit 1; }
if [ $# -eq 0 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi

command -v docker-compose > /dev/null ||
  die "docker-compose is not installed (Debian: apt-get install docker-compose)"

export SMDB_COMPOSE_DIR=${SMDB_COMPOSE_DIR:-$ROOT/run/compose}
files=(-f docker-compose.yml)
if [ "${SMDB_LOCAL_IMAGES:-0}" = 1 ]; then
  files+=(-f docker-compose.local.yml)
  export SMDB_DEBIAN=${SMDB_DEBIAN:-localhost/smdb-debian:bookworm}
  export SMDB_MARIADB_IMAGE=${SMDB_MARIADB_IMAGE:-localhost/smdb-mariadb:bookworm}
fi

# the engine's socket, as the controller's container mounts it, and its group
sock=/var/run/docker.sock
case "${DOCKER_HOST:-}" in
  unix://*) sock=${DOCKER_HOST#unix://} ;;
  "") ;;
  *) [ -n "${SMDB_DOCKER_SOCKET:-}" ] ||
       die "DOCKER_HOST=$DOCKER_HOST is not a unix socket: set SMDB_DOCKER_SOCKET (the socket's path on the engine's host) and SMDB_DOCKER_GID" ;;
esac
export SMDB_DOCKER_SOCKET=${SMDB_DOCKER_SOCKET:-$sock}
if [ -z "${SMDB_DOCKER_GID:-}" ]; then
  [ -S "$SMDB_DOCKER_SOCKET" ] || die "no engine socket at $SMDB_DOCKER_SOCKET (set DOCKER_HOST)"
  SMDB_DOCKER_GID=$(stat -c %g "$SMDB_DOCKER_SOCKET")
  # the controller is not root in its container: it needs the group's access
  case $(stat -c %A "$SMDB_DOCKER_SOCKET") in
    ????rw????) ;;
    *) die "$SMDB_DOCKER_SOCKET gives its group no access: chmod g+rw it (podman system service makes it 0600)" ;;
  esac
fi
export SMDB_DOCKER_GID

# the compute image: yours (SMDB_COMPUTE_IMAGE), or the one built here
build_compute=0
if [ -z "${SMDB_COMPUTE_IMAGE:-}" ]; then
  SMDB_COMPUTE_IMAGE=smdb-compute:${SMDB_TAG:-latest}
  build_compute=1
fi
export SMDB_COMPUTE_IMAGE

dc() { docker-compose "${files[@]}" "$@"; }

up() {
  scripts/compose-secrets.sh "$SMDB_COMPOSE_DIR" > /dev/null
  echo "compose: building the images (the first time takes a few minutes)" >&2
  dc build -q
  [ "$build_compute" = 0 ] || dc build -q compute
  dc up -d "$@"
  # the one-shot demo: its output is the command to connect
  local st="" i
  for i in $(seq 600); do
    st=$(dc ps demo)
    grep -q 'Exit ' <<< "$st" && break
    sleep 0.5
  done
  dc logs --no-color --no-log-prefix demo | grep -v '^Attaching to '
  grep -q 'Exit 0' <<< "$st" || die "the demo project failed (scripts/compose.sh logs)"
}

down() {
  # no wake may start a compute while they are removed
  dc stop -t 10 nginx controller || true
  dc run --rm reap || echo "compose: could not remove the computes (run: scripts/compose.sh run --rm reap)" >&2
  dc down -v --remove-orphans "$@"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  *) dc "$@" ;;
esac
