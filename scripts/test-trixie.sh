#!/usr/bin/env bash
# `make test-trixie`: builds this worktree inside a Debian 13 (trixie) root
# (nginx 1.26, MariaDB 11.8, clang 19) and runs the unit tests and the e2e
# tests there, so that every change is checked against both the nginx and
# MariaDB of Debian 12 (the host) and those of Debian 13.
#
#   scripts/test-trixie.sh                  build + unit + e2e (TRIXIE_TESTS)
#   scripts/test-trixie.sh CMD ARGS...      run CMD in the root's /src instead
#
# TRIXIE_TESTS: the e2e files to run (default: all of tests/e2e).
# The root is built by scripts/trixie-root.sh when missing.  The worktree is
# bind-mounted at /src, and $BUILD/trixie-out over /src/build, so the same
# sources are tested and the host's build outputs are left alone.  The chroot
# shares the host's loopback: the tests choose free ports as usual.
# Every mount is undone on exit, whatever happened.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=trixie-root.sh
. "$HERE/trixie-root.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (mount, chroot)"

ROOT_DIR="${TRIXIE_ROOT:-$BUILD/trixie}"
OUT="$BUILD/trixie-out"

lock_root "$ROOT_DIR"
export TRIXIE_LOCKED=1
t0=$SECONDS
main "$ROOT_DIR"
t_root=$((SECONDS - t0))

mkdir -p "$OUT"
trap 'chroot_umount || true' EXIT
trap 'exit 130' INT TERM
chroot_mount "$ROOT_DIR" "$SRC" "$OUT"

in_root() {
  chroot "$ROOT_DIR" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" \
      bash -c 'cd /src && "$@"' in-root "$@"
}

if [ $# -gt 0 ]; then
  in_root "$@"
  exit $?
fi

echo "test-trixie: $(in_root nginx -v 2>&1), $(in_root mariadbd --version | sed 's/.*Ver /mariadbd /')"
t1=$SECONDS
# the root has the Debian packages; Node's connectors (plain JavaScript)
# come from the host's build tree: the root may not reach the npm registry
# the way the host does (e.g. through a TLS-intercepting proxy whose CA only
# the host trusts)
"$SRC/scripts/install-deps.sh" >/dev/null
rm -rf "$OUT/npm" && cp -a "$SRC/build/npm" "$OUT/npm"
in_root make all unit
in_root make fuzz-short FUZZ_SECONDS=5
t_build=$((SECONDS - t1))

t2=$SECONDS
tests="${TRIXIE_TESTS:-.}"
rc=0
in_root bash -c "cd tests/e2e && /usr/bin/python3 -m pytest -p no:cacheprovider -q -ra $tests" || rc=$?
t_e2e=$((SECONDS - t2))

echo "test-trixie: root ${t_root} s, build+unit+fuzz ${t_build} s, e2e ${t_e2e} s"
exit $rc
