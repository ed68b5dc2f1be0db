#!/usr/bin/env bash
# Builds (once) and caches a Debian 13 "trixie" root for `make test-trixie`,
# with the project's packages installed by the project's own
# scripts/install-deps.sh run inside it, so the same install path that users
# take on trixie is what gets tested.
#
#   scripts/trixie-root.sh [ROOT]        default ROOT: $BUILD/trixie
#
# The root is reused while its stamp matches install-deps.sh; when the script
# changed, install-deps.sh runs again inside the cached root (it installs only
# what is missing).  A root that failed half-way is never reused: debootstrap
# writes into ROOT.new and the directory is renamed only when it succeeded.
#
# Also sourced by scripts/test-trixie.sh for chroot_mount / chroot_umount.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "$HERE/.." && pwd)"
BUILD="${BUILD:-$SRC/build}"

die() { echo "trixie-root: $*" >&2; exit 1; }

# The host's Debian mirror (deb822 or one-line sources), so the chroot uses
# the same mirror the host is configured for.
host_mirror() { SMDB_DEBIAN_MIRROR=${TRIXIE_MIRROR:-${SMDB_DEBIAN_MIRROR:-}} "$SRC/scripts/debian-mirror.sh"; }

# Mount points in the order they are mounted; chroot_umount walks it backwards.
CHROOT_MOUNTS=()

# chroot_mount ROOT [SRC_DIR SRC_BUILD]: /proc, /dev, /sys for the chroot and,
# when given, the worktree at ROOT/src with SRC_BUILD over ROOT/src/build so
# the chroot's build outputs never overwrite the host's.
chroot_mount() {
  local root="$1" src="${2:-}" sbuild="${3:-}"
  mkdir -p "$root/proc" "$root/dev" "$root/sys"
  mount -t proc proc "$root/proc" && CHROOT_MOUNTS+=("$root/proc")
  mount --bind /dev "$root/dev" && CHROOT_MOUNTS+=("$root/dev")
  mount --bind /dev/pts "$root/dev/pts" && CHROOT_MOUNTS+=("$root/dev/pts")
  # A private /dev/shm: POSIX shared memory of the chroot's servers stays theirs.
  mount -t tmpfs -o mode=1777 shm "$root/dev/shm" && CHROOT_MOUNTS+=("$root/dev/shm")
  mount --bind /sys "$root/sys" && CHROOT_MOUNTS+=("$root/sys")
  if [ -n "$src" ]; then
    mkdir -p "$root/src" "$sbuild"
    mount --bind "$src" "$root/src" && CHROOT_MOUNTS+=("$root/src")
    mount --bind "$sbuild" "$root/src/build" && CHROOT_MOUNTS+=("$root/src/build")
  fi
  # Name resolution for apt inside the chroot.
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

# Mounts left under ROOT by a run that was killed (SIGKILL skips traps):
# undone before the root is used or removed, deepest first.  Callers hold
# the root's lock, so no live run owns them.
stale_umount() {
  local root m
  root="$(readlink -f "$1")"
  awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do
      echo "trixie-root: unmounting stale $m" >&2
      umount "$m" 2>/dev/null || umount -l "$m"
    done
}

# One run per root at a time (building, installing, testing).
lock_root() {
  mkdir -p "$(dirname "$1")"
  exec 9> "$1.lock"
  flock -w 1800 9 || die "another run holds $1.lock"
}

chroot_umount() {
  local i m rc=0
  for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
    m="${CHROOT_MOUNTS[$i]}"
    umount "$m" 2>/dev/null || umount -l "$m" || { echo "trixie-root: cannot unmount $m" >&2; rc=1; }
  done
  CHROOT_MOUNTS=()
  return $rc
}

# Packaged services must not start inside the chroot (they would take the
# shared loopback's default ports): the same policy install-deps.sh sets.
no_services() {
  printf '#!/bin/sh\nexit 101\n' > "$1/usr/sbin/policy-rc.d"
  chmod +x "$1/usr/sbin/policy-rc.d"
}

deps_stamp() { sha256sum "$SRC/scripts/install-deps.sh" | cut -d' ' -f1; }

# install-deps.sh of this worktree, run inside the chroot.
install_deps_inside() {
  local root="$1"
  mkdir -p "$root/opt/smdb"
  cp "$SRC/scripts/install-deps.sh" "$root/opt/smdb/install-deps.sh"
  chroot_mount "$root"
  local rc=0
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      bash /opt/smdb/install-deps.sh || rc=$?
  chroot_umount || rc=1
  return $rc
}

bootstrap() {
  local root="$1" new="$1.new" mirror
  mirror="$(host_mirror)"
  command -v debootstrap >/dev/null || {
    echo "trixie-root: installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -q --no-install-recommends debootstrap >/dev/null; } ||
      die "debootstrap is not installed and cannot be installed"
  }
  [ -e /usr/share/debootstrap/scripts/trixie ] ||
    die "this debootstrap does not know trixie (upgrade debootstrap)"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || die "no $keyring (apt-get install debian-archive-keyring)"
  rm -rf "$new"
  mkdir -p "$(dirname "$root")"
  echo "trixie-root: debootstrap trixie from $mirror into $root (about 90 s)"
  local t0=$SECONDS
  if ! debootstrap --variant=minbase --keyring="$keyring" trixie "$new" "$mirror" \
        > "$(dirname "$root")/trixie-debootstrap.log" 2>&1; then
    tail -20 "$(dirname "$root")/trixie-debootstrap.log" >&2
    rm -rf "$new"
    die "debootstrap failed (log: $(dirname "$root")/trixie-debootstrap.log)"
  fi
  echo "trixie-root: debootstrap took $((SECONDS - t0)) s"
  no_services "$new"
  # Fewer files to unpack: no docs, man pages or translations in a test root.
  cat > "$new/etc/dpkg/dpkg.cfg.d/01-smdb-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/info/*
EOF
  mv "$new" "$root"
}

main() {
  [ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, mount, chroot)"
  local root="${1:-$BUILD/trixie}" t0=$SECONDS
  [ -n "${TRIXIE_LOCKED:-}" ] || lock_root "$root"
  stale_umount "$root"
  [ ! -e "$root.new" ] || stale_umount "$root.new"
  if [ ! -f "$root/etc/debian_version" ]; then
    rm -rf "$root"
    bootstrap "$root"
  fi
  local want have=""
  want="$(deps_stamp)"
  [ -f "$root/.smdb-deps" ] && have="$(cat "$root/.smdb-deps")"
  if [ "$want" != "$have" ]; then
    echo "trixie-root: installing the project's packages with install-deps.sh"
    local t1=$SECONDS
    install_deps_inside "$root" || die "install-deps.sh failed inside $root"
    echo "$want" > "$root/.smdb-deps"
    echo "trixie-root: install-deps.sh took $((SECONDS - t1)) s"
  fi
  echo "trixie-root: $root ready ($(cat "$root/etc/debian_version"), $((SECONDS - t0)) s)"
}

# Sourced by test-trixie.sh for the helpers; run directly to build the root.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
