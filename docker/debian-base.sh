#!/usr/bin/env bash
# Usage: docker/debian-base.sh
#
# Makes a Debian base image without any registry: `debootstrap --variant=minbase` of bookworm
# from this machine's apt mirror, imported into the container engine. Prints the image name
# (last line), for BASE_IMAGE=... docker/build.sh.
#
# Both steps are cached, keyed by a hash of everything that shapes the root file system (suite,
# variant, mirror, debootstrap's version): the tarball under $BASE_CACHE_DIR and the image in the
# engine's storage, tagged with that hash. A fresh machine builds both from nothing (about a
# minute); debootstrap needs root.
#
# Environment:
#   CONTAINER_ENGINE  podman (default) or docker
#   DEBIAN_SUITE      default bookworm (its python3 is the 3.11 that MXNet 1.9.1's numpy needs)
#   DEBIAN_MIRROR     default: the first mirror for the suite in /etc/apt/sources.list{,.d}
#   BASE_CACHE_DIR    default /var/cache/sagemaker-mxnet-container as root, else ~/.cache/...
set -euo pipefail

ENGINE=${CONTAINER_ENGINE:-podman}
SUITE=${DEBIAN_SUITE:-bookworm}

apt_mirror() {
  local uri=""
  # deb822 stanzas (Debian 12's own format): the first enabled "deb" stanza listing the suite.
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk -v suite="$SUITE" '
      BEGIN { RS = "" }
      {
        uris = ""; deb = 0; listed = 0; enabled = 1
        n = split($0, lines, "\n")
        for (i = 1; i <= n; i++) {
          line = lines[i]
          if (line ~ /^#/) continue
          if (line ~ /^Types:/ && line ~ /[ \t]deb([ \t]|$)/) deb = 1
          if (line ~ /^Enabled:[ \t]*no/) enabled = 0
          if (line ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line); split(line, u, /[ \t]+/); uris = u[1] }
          if (line ~ /^Suites:/) { m = split(line, s, /[ \t]+/); for (j = 2; j <= m; j++) if (s[j] == suite) listed = 1 }
        }
        if (deb && listed && enabled && uris != "") { print uris; exit }
      }' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ]; then
    # One-line format: "deb [options] URI SUITE COMPONENTS...".
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk -v suite="$SUITE" '$1 == "deb" { sub(/\[[^]]*\][ \t]*/, ""); if ($3 == suite) { print $2; exit } }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

MIRROR=${DEBIAN_MIRROR:-$(apt_mirror)}
if [ "$(id -u)" = 0 ]; then
  CACHE_DIR=${BASE_CACHE_DIR:-/var/cache/sagemaker-mxnet-container}
else
  CACHE_DIR=${BASE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-mxnet-container}
fi

if ! command -v debootstrap >/dev/null; then
  echo "debootstrap is missing: run scripts/podman-setup.sh (as root) or apt-get install debootstrap" >&2
  exit 1
fi
debootstrap_version=$(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo unknown)
key=$(printf '%s\n' "suite=$SUITE" "variant=minbase" "mirror=$MIRROR" "debootstrap=$debootstrap_version" "arch=$(uname -m)" |
  sha256sum | cut -c1-16)
image="localhost/sagemaker-mxnet-base:${SUITE}-minbase-${key}"
tarball="$CACHE_DIR/${SUITE}-minbase-${key}.tar"

mkdir -p "$CACHE_DIR"
# One maker at a time per cache: concurrent test sessions on a machine share the result.
exec 9>"$CACHE_DIR/.debian-base.lock"
flock 9

if ! "$ENGINE" image exists "$image" 2>/dev/null && ! "$ENGINE" image inspect "$image" >/dev/null 2>&1; then
  if [ ! -s "$tarball" ]; then
    [ "$(id -u)" = 0 ] || { echo "debootstrap needs root to make $tarball" >&2; exit 1; }
    root=$(mktemp -d "${TMPDIR:-/tmp}/debian-base.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    echo "debootstrap --variant=minbase $SUITE from $MIRROR" >&2
    if ! debootstrap --variant=minbase "$SUITE" "$root/rootfs" "$MIRROR" >"$root/log" 2>&1; then
      tail -n 30 "$root/log" >&2
      echo "debootstrap failed (log above); is $MIRROR reachable? DEBIAN_MIRROR names another." >&2
      exit 1
    fi
    # The image's apt needs no cached package lists or downloaded packages.
    rm -rf "$root/rootfs/var/cache/apt/archives/"*.deb "$root/rootfs/var/lib/apt/lists/"*
    tar --numeric-owner -C "$root/rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
  fi
  "$ENGINE" import "$tarball" "$image" >&2
fi
echo "$image"
