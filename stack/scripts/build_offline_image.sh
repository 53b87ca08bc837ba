#!/usr/bin/env bash
# Builds the one local image that stands in for the pinned registry images on a machine with no image registry:
# Debian bookworm with Python (the API), Prometheus, Alertmanager and PostgreSQL from Debian's packages.
# Point the compose file at it with the variables printed at the end (see stack/offline.env).
set -euo pipefail
image="${SEALGATE_OFFLINE_IMAGE:-sealgate-offline:bookworm-1}"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "offline image $image already present"
  exit 0
fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "build_offline_image: no Debian mirror found in the apt configuration" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build_offline_image: debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }

root=$(mktemp -d /var/tmp/sealgate-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm into $root (about a minute)"
debootstrap --variant=minbase \
  --include=python3,python3-prometheus-client,prometheus,prometheus-alertmanager,postgresql,sqlite3,wget,ca-certificates \
  bookworm "$root" "$mirror" >/tmp/sealgate-debootstrap.log 2>&1 \
  || { echo "debootstrap failed; see /tmp/sealgate-debootstrap.log" >&2; exit 1; }
# UI-only assets (218 MB) nobody reads in a headless stack.
rm -rf "$root"/usr/share/javascript/moment-timezone/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "built offline image $image"
