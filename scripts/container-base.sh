#!/usr/bin/env bash
# The Debian base image every container build here starts from, built once
# per machine from Debian's packages (debootstrap + podman import): these
# machines cannot pull from a registry.  Prints the image's name.
#
#   scripts/container-base.sh [bookworm|trixie]
#
# Users with a registry build the images FROM debian:bookworm and
# mariadb:<version> instead (images/README.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/tests/containers/containers.conf}
REL=${1:-bookworm}
IMG=localhost/smdb-debian:$REL

die() { echo "container-base: $*" >&2; exit 1; }
case "$REL" in bookworm|trixie) ;; *) die "unknown release $REL" ;; esac
command -v podman >/dev/null || die "podman is not installed (make deps)"
podman image exists "$IMG" && { echo "$IMG"; exit 0; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap)"

# one build per machine at a time; the loser of the race finds the image
exec 9> "/var/lock/smdb-container-base-$REL.lock"
flock 9
podman image exists "$IMG" && { echo "$IMG"; exit 0; }

TMP=$(mktemp -d /var/tmp/smdb-base.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
M=$("$ROOT/scripts/debian-mirror.sh")
echo "container-base: debootstrap $REL from $M (about a minute)" >&2
debootstrap --variant=minbase "$REL" "$TMP/root" "$M" > "$TMP/log" 2>&1 ||
  { tail -20 "$TMP/log" >&2; die "debootstrap failed"; }
# image hygiene: no docs in layers, no recommends, no apt lists left behind
cat > "$TMP/root/etc/dpkg/dpkg.cfg.d/01-smdb-nodoc" <<'NODOC'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/info/*
NODOC
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
  > "$TMP/root/etc/apt/apt.conf.d/01-smdb-norecommends"
# as Debian's official images: downloaded packages never stay in a layer
cat > "$TMP/root/etc/apt/apt.conf.d/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
CLEAN
printf 'deb %s %s main\n' "$M" "$REL" > "$TMP/root/etc/apt/sources.list"
rm -rf "$TMP/root/var/lib/apt/lists/"* "$TMP/root/var/cache/apt/"*.bin
tar -C "$TMP/root" --numeric-owner -c . |
  podman import --quiet --change 'CMD ["/bin/bash"]' - "$IMG" > /dev/null
echo "$IMG"
