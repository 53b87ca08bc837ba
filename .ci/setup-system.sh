#!/usr/bin/env bash
# Installs and starts everything sealgate's tests need on a fresh Debian 12 machine:
# apt packages, a running dockerd, Docker Compose v2 (from Debian trixie), and the offline stack image.
# Idempotent: each step is skipped when its result is already present.
#   --tools-only   just the tools the local-process backend needs (Prometheus, Alertmanager, PostgreSQL and its
#                  exporter): no Docker.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }
tools_only=false
[ "${1:-}" = "--tools-only" ] && tools_only=true

# Without root or apt-get nothing can be installed here: say what the stack needs and stop without failing, so the
# main command still runs — on whatever is installed (the local backend when no Docker engine answers, whose refusal
# of a containerization sprint names what is missing).
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  log "cannot install system packages here (needs root and apt-get): install Docker (engine + Compose v2) for the"
  log "compose backend, and prometheus, prometheus-alertmanager, postgresql, prometheus-postgres-exporter, awscli,"
  log "prometheus-node-exporter, prometheus-pushgateway for the local one — or run this script as root on Debian/Ubuntu"
  exit 0
fi

apt_packages=(prometheus prometheus-alertmanager postgresql prometheus-postgres-exporter sqlite3 git ca-certificates
              python3-venv)
# The exporters the public repositories of tests/fixtures/real/ run (node-exporter, pushgateway): Debian's builds run
# them as local processes there (tests/seal/test_real_repos.py).
apt_packages+=(prometheus-node-exporter prometheus-pushgateway)
# The backup script's S3 client for the offsite copy (any `aws` on PATH will do).
command -v aws >/dev/null || apt_packages+=(awscli)
$tools_only || apt_packages+=(debootstrap shellcheck curl)
# A machine that already has a Docker engine (e.g. GitHub's runners, with Docker's own packages) keeps it:
# Debian's docker.io would conflict with them.
$tools_only || command -v dockerd >/dev/null || apt_packages+=(docker.io)
# The real Mermaid renderer for the SEAL's drill gantt test: Debian's Chromium, and node/npm for the packages below
# (a machine of this kind already has node 20; Debian's nodejs otherwise).
$tools_only || apt_packages+=(chromium)
$tools_only || command -v npm >/dev/null || apt_packages+=(nodejs npm)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The Debian packages start their own daemons on install when they can; we start what we need ourselves.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# The offsite backup storage as a local process: moto's S3 server (no MinIO binary in Debian, PyPI or npm), pinned, in
# a virtualenv of its own, on PATH as moto_server (the stack description's `local.command`).
if ! command -v moto_server >/dev/null; then
  log "installing moto's S3 server into /opt/sealgate-moto"
  python3 -m venv /opt/sealgate-moto
  /opt/sealgate-moto/bin/pip install --quiet --disable-pip-version-check "moto[s3]==5.2.5" "flask>=3,<4" "flask-cors>=4,<7"
  ln -sf /opt/sealgate-moto/bin/moto_server /usr/local/bin/moto_server
fi

if $tools_only; then
  log "tools ready (no Docker: sealgate will use the local-process backend)"
  exit 0
fi

# dockerd: no systemd here, so start it ourselves and wait until it answers.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
fi

# Compose v2: not in bookworm; trixie's docker-compose package runs here. Fetch it with apt from the host's own
# mirror (read from its apt config, never hard-coded) through a private sources list.
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
  log "installing Docker Compose v2 from trixie"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "cannot find a Debian mirror in the apt configuration" >&2; exit 1; }
  work=$(mktemp -d); chmod 755 "$work"
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$work/sources.list"
  opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists"
        -o "Dir::Cache::archives=$work/archives" -o "APT::Get::List-Cleanup=0")
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download docker-compose >/dev/null)
  dpkg-deb -x "$work"/docker-compose_*.deb "$work/root"
  mkdir -p "$plugin_dir"
  install -m 0755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
  rm -rf "$work"
fi
docker compose version

# `mermaid` and `playwright-core` (which drives the Chromium it is given, and downloads no browser) from the npm
# registry into a cache folder outside the repository; tests/core/test_drill_report.py renders the gantt with them.
mermaid_dir="${SEALGATE_MERMAID_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sealgate/mermaid}"
if [ ! -f "$mermaid_dir/node_modules/mermaid/dist/mermaid.min.js" ] || [ ! -f "$mermaid_dir/node_modules/playwright-core/package.json" ]; then
  log "npm install mermaid playwright-core into $mermaid_dir"
  mkdir -p "$mermaid_dir"
  [ -f "$mermaid_dir/package.json" ] || echo '{"name": "sealgate-mermaid-render", "private": true}' >"$mermaid_dir/package.json"
  (cd "$mermaid_dir" && npm install --no-audit --no-fund --silent mermaid@12.3.0 playwright-core@1.55.0)
fi

# The offline image (no registry is reachable here): built by the stack's own script. Where a registry is
# reachable (e.g. GitHub runners) set SEALGATE_SKIP_OFFLINE_IMAGE=1 and Compose pulls the pinned images.
if [ "${SEALGATE_SKIP_OFFLINE_IMAGE:-0}" != "1" ]; then
  bash "$here/../stack/scripts/build_offline_image.sh"
fi
log "system ready"
