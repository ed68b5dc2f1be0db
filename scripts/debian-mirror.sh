#!/usr/bin/env bash
# The host's Debian mirror (the first non-security URI apt uses), for
# debootstrap runs of the tests (trixie-root.sh, container-base.sh).
# SMDB_DEBIAN_MIRROR overrides it.
m=""
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
  m=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
  m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)
fi
echo "${SMDB_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
