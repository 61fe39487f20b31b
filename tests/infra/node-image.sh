#!/usr/bin/env bash
# Build the systemd "farm node" image (Debian bookworm) with debootstrap: Docker Hub is not
# reachable here. Built per machine, never committed: it carries this machine's apt mirror,
# proxy settings and CA (HTTPS egress goes through an intercepting CA).
set -euo pipefail
image=${ANIMAFLOW_NODE_IMAGE:-animaflow/node:bookworm}
if docker image inspect "$image" >/dev/null 2>&1; then echo "node image: $image present"; exit 0; fi
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install -y debootstrap" >&2; exit 1; }
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt/sources.list.d/debian.sources" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "node image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,curl \
  bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
rm -f "$rootfs/etc/apt/sources.list"
mkdir -p "$rootfs/etc/apt/sources.list.d"
cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || cp /etc/apt/sources.list "$rootfs/etc/apt/"
cp /etc/apt/apt.conf.d/* "$rootfs/etc/apt/apt.conf.d/" 2>/dev/null || true
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$rootfs/etc/pip.conf"
: > "$rootfs/etc/machine-id"
# Package lists for the sources just copied, fetched once here: the roles' apt tasks (cache_valid_time
# 3600) then install without each node container fetching and parsing them again. A farm node has them.
rm -rf "$rootfs"/var/lib/apt/lists/*
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" apt-get update -q >"$work/apt-update.log" 2>&1 || { tail -n 30 "$work/apt-update.log" >&2; exit 1; }
rm -f "$rootfs/etc/resolv.conf" "$rootfs"/var/cache/apt/archives/*.deb
# Units that fail or make no sense in a container.
for unit in systemd-resolved.service getty.target console-getty.service systemd-timesyncd.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
tar -C "$rootfs" -c . | docker import -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' - "$image" >/dev/null
docker image inspect "$image" --format 'node image: {{.RepoTags}} {{.Size}} bytes'
