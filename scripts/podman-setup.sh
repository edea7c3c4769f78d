#!/usr/bin/env bash
# Usage: scripts/podman-setup.sh [CONF]
#
# Makes this machine ready to build and run the training images with podman where no registry is
# reachable: installs podman and what it needs here (as root, with apt-get), and writes a
# containers.conf (to CONF, default $CACHE/containers.conf) with the settings this kind of machine
# needs. Prints the containers.conf path (last line): export CONTAINERS_CONF=that path.
set -euo pipefail

# netavark needs iptables for its bridge networks; aardvark-dns resolves container names on them.
PACKAGES=(podman runc fuse-overlayfs debootstrap slirp4netns netavark aardvark-dns uidmap iptables)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$package")
done
"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" --with-recommends "${missing[@]}"

if [ "$(id -u)" = 0 ]; then
  cache=/var/cache/sagemaker-mxnet-container
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-mxnet-container
fi
CONF=${1:-$cache/containers.conf}
mkdir -p "$(dirname "$CONF")"
# cgroupfs: no systemd runs here to manage cgroups (and this kernel has cgroup v1); runc is the
# runtime this setup is proven with. The ulimits are what MXNet's threads and sockets need.
# Events go to a file because there is no journald.
cat >"$CONF.partial" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$CONF.partial" "$CONF"
echo "$CONF"
