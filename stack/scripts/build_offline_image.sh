#!/usr/bin/env bash
# Builds the one local image that stands in for the pinned registry images on a machine with no image registry:
# Debian bookworm with Python (the API, console-log, integrations-standin), Prometheus, Alertmanager, PostgreSQL and
# postgres_exporter from Debian's packages, and moto's S3 server (from PyPI, into the image's python: the offsite
# backup storage where no MinIO image can be had). Point the compose file at it with stack/offline.env.
# The tag changes whenever what the image holds changes (bookworm-2: + prometheus-postgres-exporter; bookworm-3: +
# moto): an image already present under the tag is not rebuilt.
set -euo pipefail
image="${SEALGATE_OFFLINE_IMAGE:-sealgate-offline:bookworm-3}"
# moto, pinned; installed for the image's Python (Debian bookworm: CPython 3.11 on x86_64), not the host's.
moto_requirement="moto[s3]==5.2.5"
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
  --include=python3,python3-prometheus-client,prometheus,prometheus-alertmanager,postgresql,prometheus-postgres-exporter,sqlite3,wget,ca-certificates \
  bookworm "$root" "$mirror" >/tmp/sealgate-debootstrap.log 2>&1 \
  || { echo "debootstrap failed; see /tmp/sealgate-debootstrap.log" >&2; exit 1; }
# UI-only assets (218 MB) nobody reads in a headless stack.
rm -rf "$root"/usr/share/javascript/moment-timezone/* "$root"/var/cache/apt/archives/*.deb
# moto's S3 server, into /opt/moto for the image's python3 (wheels for its CPython 3.11, whatever the host runs),
# started as /usr/local/bin/moto_server. Only its S3 backend and the server (Flask) are installed.
echo "pip: $moto_requirement into the image"
python3 -m pip --version >/dev/null 2>&1 || { echo "build_offline_image: pip missing: apt-get install -y python3-pip" >&2; exit 1; }
python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$root/opt/moto" \
  --python-version 3.11 --implementation cp --platform manylinux2014_x86_64 --only-binary=:all: \
  "$moto_requirement" "flask>=3,<4" "flask-cors>=4,<7" >/tmp/sealgate-offline-pip.log 2>&1 \
  || { echo "pip install of $moto_requirement failed; see /tmp/sealgate-offline-pip.log" >&2; exit 1; }
rm -rf "$root/opt/moto/bin"  # entry points written for the host's interpreter
mkdir -p "$root/usr/local/bin"
printf '#!/bin/sh\nPYTHONPATH=/opt/moto exec python3 -m moto.server "$@"\n' >"$root/usr/local/bin/moto_server"
chmod 0755 "$root/usr/local/bin/moto_server"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "built offline image $image"
