#!/usr/bin/env bash
set -euo pipefail
# backup_observability.sh — consistent, fail-closed backups of the stack's data (F9.10 EIXO 3; offsite: F9.11).
#
# Backs up postgres_data, prometheus_data and grafana_data into DEST as <name>_<UTC timestamp>.tar.gz (mode 0600)
# with <name>_latest.tar.gz symlinks (name: postgres, prometheus, grafana), and deletes its own archives older than
# the retention (7 days: find -mtime +7). With --offsite-url, each archive is also copied to S3-compatible storage.
#
#   backup_observability.sh --mode compose --project P [--compose-file F] [--helper-image IMG] [--dest DIR]
#   backup_observability.sh --mode local --data-dir DIR --prometheus-url URL --pg-host H --pg-port N
#                           [--pg-user U] [--dest DIR]
#   common: [--retention-days N] [--dest DIR]   (DEST default /opt/techno-os/backups/observability/)
#   offsite: --offsite-url URL --offsite-bucket B [--offsite-prefix P] [--offsite-retention-days N (default 30)]
#
# Offsite copy (--offsite-url): with the `aws` S3 client (awscli), credentials from OFFSITE_S3_ACCESS_KEY_ID and
# OFFSITE_S3_SECRET_ACCESS_KEY (region OFFSITE_S3_REGION, default us-east-1), never from the command line. The bucket
# must answer (it is created when absent) before anything is backed up. Each archive is uploaded as
# s3://B/[P/]<name>_<stamp>.tar.gz with its sha256 and backup time as user metadata (sha256, backup-time), then
# checked on the storage: size, MD5 (the ETag of a single-part upload) and the recorded sha256 must match the local
# archive. Offsite retention deletes this script's objects whose *name* stamp is older than N days: S3 sets an
# object's LastModified itself at upload and no client can back-date it, so the age that counts is the backup time
# the name carries (the time the data was captured). Other objects in the bucket are never touched.
#
# Consistency:
#   prometheus  POST /api/v1/admin/tsdb/snapshot (needs --web.enable-admin-api), archive the snapshot, delete it
#   postgres    pg_dumpall (all databases and roles, one transaction-consistent dump per database)
#   grafana     sqlite3 .backup of grafana.db (SQLite's online backup API) plus the rest of the directory; without a
#               grafana.db (Grafana never ran) the directory is archived as it is, and the output says so
# Modes:
#   compose  volumes <project>_<name>_data are read through a throwaway container of --helper-image (default: the
#            offline image when present, else alpine); the snapshot and pg_dumpall run inside the project's running
#            prometheus/postgres containers, found by their Compose labels (works for Compose v1 and v2 projects;
#            --compose-file is accepted for symmetry and only checked to exist)
#   local    data directories DIR/prometheus, DIR/postgres, DIR/grafana; Prometheus reached at --prometheus-url, the
#            PostgreSQL server at --pg-host/--pg-port as --pg-user (default techno, the compose POSTGRES_USER;
#            PGPASSWORD is honoured)
#
# Fail-closed: any missing volume/directory/service, an unwritable DEST or a failed step exits non-zero naming it.
# Archives are written under a staging directory inside DEST and renamed into place, and the latest links moved,
# only after all three succeeded: a latest link never points at a partial archive, and a failed run deletes nothing.
#
# Output, one line per volume on success, then a summary:
#   backup: prometheus_data method=snapshot-api archive=DEST/prometheus_20250101T000000Z.tar.gz sha256=... bytes=N
#   backup: offsite prometheus_data object=s3://B/P/prometheus_20250101T000000Z.tar.gz sha256=... bytes=N
#   backup: offsite OK 3 objects in s3://B/P (retention 30 days: removed N old object(s))
#   backup: OK 3 archives in DEST (retention 7 days: removed N old archive(s))
# On failure: `backup: FAILED <what>: <why>` on stderr, exit 1 (2 for usage errors).

umask 077
readonly NAMES=(postgres prometheus grafana)
readonly OFFLINE_IMAGE="${SEALGATE_OFFLINE_IMAGE:-sealgate-offline:bookworm-3}"

mode="" project="" compose_file="" helper_image="" data_dir="" prom_url="" pg_host="" pg_port="" pg_user="techno"
dest="/opt/techno-os/backups/observability/"
retention_days=7
offsite_url="" offsite_bucket="" offsite_prefix="" offsite_retention_days=30

usage() {
  sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

fail() {
  # A full destination breaks whichever step writes next (a dump, an archive, a log): say so, whatever the step.
  if [[ -n "${staging:-}" && "$(stat -f -c %a -- "$dest" 2>/dev/null)" == 0 ]]; then
    set -- "$*" "(dest $dest is full: No space left on device)"
  fi
  echo "backup: FAILED $*" >&2
  exit 1
}

need_value() {
  [[ $# -ge 2 && -n "$2" ]] || { echo "backup: $1 needs a value" >&2; usage; }
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --mode) need_value "$@"; mode="$2"; shift 2 ;;
    --project) need_value "$@"; project="$2"; shift 2 ;;
    --compose-file) need_value "$@"; compose_file="$2"; shift 2 ;;
    --helper-image) need_value "$@"; helper_image="$2"; shift 2 ;;
    --data-dir) need_value "$@"; data_dir="$2"; shift 2 ;;
    --prometheus-url) need_value "$@"; prom_url="${2%/}"; shift 2 ;;
    --pg-host) need_value "$@"; pg_host="$2"; shift 2 ;;
    --pg-port) need_value "$@"; pg_port="$2"; shift 2 ;;
    --pg-user) need_value "$@"; pg_user="$2"; shift 2 ;;
    --dest) need_value "$@"; dest="$2"; shift 2 ;;
    --retention-days) need_value "$@"; retention_days="$2"; shift 2 ;;
    --offsite-url) need_value "$@"; offsite_url="${2%/}"; shift 2 ;;
    --offsite-bucket) need_value "$@"; offsite_bucket="$2"; shift 2 ;;
    --offsite-prefix) need_value "$@"; offsite_prefix="$2"; shift 2 ;;
    --offsite-retention-days) need_value "$@"; offsite_retention_days="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "backup: unknown argument: $1" >&2; usage ;;
  esac
done

[[ "$retention_days" =~ ^[0-9]+$ ]] || { echo "backup: --retention-days must be a whole number of days" >&2; usage; }
case "$mode" in
  compose)
    [[ -n "$project" ]] || { echo "backup: --mode compose needs --project" >&2; usage; }
    [[ -z "$compose_file" || -f "$compose_file" ]] || fail "compose file: $compose_file does not exist"
    command -v docker >/dev/null || fail "docker: not installed (needed by --mode compose)"
    docker info >/dev/null 2>&1 || fail "docker: no Docker engine answers"
    ;;
  local)
    [[ -n "$data_dir" && -n "$prom_url" && -n "$pg_host" && -n "$pg_port" ]] \
      || { echo "backup: --mode local needs --data-dir, --prometheus-url, --pg-host and --pg-port" >&2; usage; }
    [[ "$pg_port" =~ ^[0-9]+$ ]] || { echo "backup: --pg-port must be a port number" >&2; usage; }
    for tool in curl pg_dumpall; do
      command -v "$tool" >/dev/null || fail "$tool: not installed (needed by --mode local)"
    done
    ;;
  *) echo "backup: --mode must be compose or local" >&2; usage ;;
esac
for tool in tar gzip sha256sum flock find; do
  command -v "$tool" >/dev/null || fail "$tool: not installed"
done
if [[ -n "$offsite_url" || -n "$offsite_bucket" ]]; then
  [[ -n "$offsite_url" && -n "$offsite_bucket" ]] \
    || { echo "backup: --offsite-url and --offsite-bucket go together" >&2; usage; }
  [[ "$offsite_retention_days" =~ ^[0-9]+$ ]] \
    || { echo "backup: --offsite-retention-days must be a whole number of days" >&2; usage; }
  offsite_prefix="${offsite_prefix#/}"
  offsite_prefix="${offsite_prefix%/}"
  command -v aws >/dev/null || fail "offsite: aws (the S3 client, awscli) is not installed"
  [[ -n "${OFFSITE_S3_ACCESS_KEY_ID:-}" && -n "${OFFSITE_S3_SECRET_ACCESS_KEY:-}" ]] \
    || fail "offsite: OFFSITE_S3_ACCESS_KEY_ID and OFFSITE_S3_SECRET_ACCESS_KEY must be set (the storage's credentials)"
fi

# --- destination: must exist (or be creatable) and be writable, checked by really writing ----------------------------
dest="${dest%/}"
[[ -n "$dest" ]] || dest="/"
mkdir -p -- "$dest" 2>/dev/null || fail "dest $dest: cannot create it"
[[ -d "$dest" ]] || fail "dest $dest: not a directory"
dest=$(cd -- "$dest" && pwd -P)
# On failure mktemp's message (and only it) is captured: its last field is the system's reason (Read-only file system).
staging=$(mktemp -d "$dest/.backup-staging.XXXXXX" 2>&1) || fail "dest $dest: not writable (${staging##*: })"
trap 'rm -rf -- "$staging"' EXIT
work="$staging/work"
mkdir "$work"

# One backup at a time per destination: two runs would race on the latest links.
exec 9>"$dest/.backup.lock" || fail "dest $dest: cannot create its lock file"
flock -n 9 || fail "dest $dest: another backup is running (lock $dest/.backup.lock held)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
for name in "${NAMES[@]}"; do
  [[ ! -e "$dest/${name}_${stamp}.tar.gz" ]] || fail "${name}_data: $dest/${name}_${stamp}.tar.gz already exists (two runs in one second?)"
done

declare -A method=()

# --- compose mode helpers -------------------------------------------------------------------------------------------
container_of() {  # the one running container of a service of the project
  local service="$1" ids
  ids=$(docker ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$service" --filter status=running)
  [[ -n "$ids" ]] || fail "${service}: no running container of service $service in compose project $project"
  [[ $(wc -l <<<"$ids") -eq 1 ]] || fail "${service}: more than one running container of $service in project $project"
  echo "$ids"
}

volume_of() {
  local volume="${project}_$1_data"
  docker volume inspect "$volume" >/dev/null 2>&1 || fail "$1_data: volume $volume does not exist"
  echo "$volume"
}

pick_helper_image() {
  if [[ -n "$helper_image" ]]; then
    docker image inspect "$helper_image" >/dev/null 2>&1 || fail "helper image $helper_image: not present locally"
  elif docker image inspect "$OFFLINE_IMAGE" >/dev/null 2>&1; then
    helper_image="$OFFLINE_IMAGE"
  else
    helper_image="alpine:3.20"
  fi
}

helper() {  # helper VOLUME ro|rw SCRIPT [ARG0 ARGS...]: sh -c SCRIPT in a throwaway container, the volume on /data
  local volume="$1" opts="$2"
  shift 2
  docker run --rm --network none -v "$volume:/data:$opts" --entrypoint /bin/sh "$helper_image" -c "$@"
}

# --- per volume -------------------------------------------------------------------------------------------------------
backup_prometheus() {
  local out="$staging/prometheus.tar.gz" response snapshot
  if [[ "$mode" == compose ]]; then
    local container volume
    container=$(container_of prometheus)
    volume=$(volume_of prometheus)
    # Busybox (official image) and GNU (offline image) wget both speak --post-data.
    response=$(docker exec "$container" wget -q -O - --post-data= http://127.0.0.1:9090/api/v1/admin/tsdb/snapshot) \
      || fail "prometheus_data: snapshot API call failed (is --web.enable-admin-api set?)"
  else
    [[ -d "$data_dir/prometheus" ]] || fail "prometheus_data: directory $data_dir/prometheus does not exist"
    response=$(curl -fsS -X POST "$prom_url/api/v1/admin/tsdb/snapshot") \
      || fail "prometheus_data: snapshot API call to $prom_url failed (is --web.enable-admin-api set?)"
  fi
  snapshot=$(sed -n 's/.*"name":"\([^"]*\)".*/\1/p' <<<"$response")
  [[ "$snapshot" =~ ^[A-Za-z0-9_-]+$ ]] || fail "prometheus_data: unexpected snapshot API answer: $response"
  if [[ "$mode" == compose ]]; then
    # The snapshot lives in the data volume, wherever the image mounts it; archive it from the volume itself.
    # The snapshot is removed whether or not archiving worked: a failed run must not leave it in the live volume.
    local archived=0
    helper "$volume" ro "test -d /data/snapshots/$snapshot && tar -C /data/snapshots/$snapshot -czf - ." >"$out" \
      && archived=1
    helper "$volume" rw "rm -rf /data/snapshots/$snapshot" || echo "backup: warning: snapshot $snapshot left in $volume" >&2
    ((archived)) || fail "prometheus_data: archiving snapshot $snapshot from volume $volume failed"
  else
    local snapdir="$data_dir/prometheus/snapshots/$snapshot" archived=0
    [[ -d "$snapdir" ]] || fail "prometheus_data: snapshot $snapshot not under $data_dir/prometheus (is $prom_url the Prometheus using that directory?)"
    tar -C "$snapdir" -czf "$out" . && archived=1
    rm -rf -- "$snapdir" || echo "backup: warning: snapshot $snapdir left behind" >&2
    ((archived)) || fail "prometheus_data: archiving $snapdir failed"
  fi
  method[prometheus]="snapshot-api"
}

backup_postgres() {
  local out="$staging/postgres.tar.gz" dump="$work/postgres"
  mkdir -p "$dump"
  if [[ "$mode" == compose ]]; then
    local container
    volume_of postgres >/dev/null
    container=$(container_of postgres)
    # Inside the container, over its unix socket (trusted locally in both the official and the offline image), as
    # the superuser the container was initialised with.
    docker exec "$container" sh -c 'exec pg_dumpall -U "${POSTGRES_USER:-postgres}" --quote-all-identifiers' \
      >"$dump/pg_dumpall.sql" || fail "postgres_data: pg_dumpall in container $container failed"
  else
    [[ -d "$data_dir/postgres" ]] || fail "postgres_data: directory $data_dir/postgres does not exist"
    pg_dumpall -h "$pg_host" -p "$pg_port" -U "$pg_user" --no-password --quote-all-identifiers \
      >"$dump/pg_dumpall.sql" || fail "postgres_data: pg_dumpall -h $pg_host -p $pg_port -U $pg_user failed"
  fi
  [[ -s "$dump/pg_dumpall.sql" ]] || fail "postgres_data: pg_dumpall produced an empty dump"
  tar -C "$dump" -czf "$out" pg_dumpall.sql || fail "postgres_data: archiving the dump failed"
  method[postgres]="pg_dumpall"
}

# Copies SRC to OUT without grafana.db and its journals, then puts a sqlite3 .backup of grafana.db (SQLite's online
# backup API: a consistent copy even while Grafana writes) there; says which on stderr as "grafana-method=...".
# Runs on the host (local) or in the helper container (compose): POSIX sh, tar and sqlite3 only.
# shellcheck disable=SC2016  # expanded by the sh that runs it, not here
readonly GRAFANA_COPY='
set -eu
src="$1"; out="$2"
mkdir -p "$out"
# Through a file, not a pipe: POSIX sh has no pipefail, and a failing reader must not pass for an empty directory.
tar -C "$src" --exclude=./grafana.db --exclude=./grafana.db-journal --exclude=./grafana.db-wal \
  --exclude=./grafana.db-shm -cf "$out.partial.tar" .
tar -C "$out" -xf "$out.partial.tar"
rm -f "$out.partial.tar"
if [ -f "$src/grafana.db" ]; then
  command -v sqlite3 >/dev/null || { echo "sqlite3 is needed to copy grafana.db safely" >&2; exit 3; }
  sqlite3 -readonly "$src/grafana.db" ".backup '"'"'$out/grafana.db'"'"'"
  echo "grafana-method=sqlite-backup" >&2
else
  echo "grafana-method=directory-copy-no-db" >&2
fi
'

backup_grafana() {
  local out="$staging/grafana.tar.gz" log="$work/grafana.log"
  if [[ "$mode" == compose ]]; then
    local volume
    volume=$(volume_of grafana)
    # The archive streams out on stdout (so it is created here, by this user, with this umask); the method on stderr.
    # shellcheck disable=SC2016  # $2 is the helper's argument, expanded in the container
    helper "$volume" ro "$GRAFANA_COPY"'
tar -C "$2" -czf - .' grafana-copy /data /tmp/grafana >"$out" 2>"$log" \
      || fail "grafana_data: copying volume $volume failed (the helper image needs sh, tar and sqlite3): $(tail -n 3 "$log")"
  else
    [[ -d "$data_dir/grafana" ]] || fail "grafana_data: directory $data_dir/grafana does not exist"
    sh -c "$GRAFANA_COPY" grafana-copy "$data_dir/grafana" "$work/grafana" 2>"$log" \
      || fail "grafana_data: copying $data_dir/grafana failed: $(tail -n 3 "$log")"
    tar -C "$work/grafana" -czf "$out" . || fail "grafana_data: archiving failed"
  fi
  method[grafana]=$(sed -n 's/^grafana-method=//p' "$log" | tail -n 1)
  [[ -n "${method[grafana]}" ]] || fail "grafana_data: the copy did not report its method: $(tail -n 3 "$log")"
}

# --- offsite storage helpers ---------------------------------------------------------------------------------------------
s3() {  # the S3 client on the offsite storage; credentials through the environment only, no user profile read
  AWS_ACCESS_KEY_ID="$OFFSITE_S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$OFFSITE_S3_SECRET_ACCESS_KEY" \
    AWS_DEFAULT_REGION="${OFFSITE_S3_REGION:-us-east-1}" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
    aws --endpoint-url "$offsite_url" --output text "$@" 2>"$work/offsite.err"
}

offsite_error() { tr '\n' ' ' <"$work/offsite.err" | cut -c1-300; }

offsite_key() { echo "${offsite_prefix:+$offsite_prefix/}$1"; }

offsite_bucket_ready() {
  s3 s3api head-bucket --bucket "$offsite_bucket" >/dev/null && return 0
  s3 s3api create-bucket --bucket "$offsite_bucket" >/dev/null \
    || fail "offsite: bucket $offsite_bucket at $offsite_url neither answers nor can be created: $(offsite_error)"
  echo "backup: offsite bucket $offsite_bucket created at $offsite_url"
}

offsite_upload() {  # offsite_upload NAME: the archive of this run, uploaded and checked on the storage
  local name="$1" archive="$dest/${1}_${stamp}.tar.gz" key sum md5 bytes answer etag size recorded
  key=$(offsite_key "${name}_${stamp}.tar.gz")
  sum=$(sha256sum "$archive" | cut -d' ' -f1)
  md5=$(md5sum "$archive" | cut -d' ' -f1)
  bytes=$(stat -c %s "$archive")
  s3 s3api put-object --bucket "$offsite_bucket" --key "$key" --body "$archive" \
    --metadata "sha256=$sum,backup-time=$stamp" >/dev/null \
    || fail "offsite: uploading s3://$offsite_bucket/$key failed: $(offsite_error)"
  answer=$(s3 s3api head-object --bucket "$offsite_bucket" --key "$key" --query '[ETag, ContentLength, Metadata.sha256]') \
    || fail "offsite: s3://$offsite_bucket/$key is not on the storage after its upload: $(offsite_error)"
  read -r etag size recorded <<<"$answer"
  etag="${etag//\"/}"
  [[ "$size" == "$bytes" && "$etag" == "$md5" && "$recorded" == "$sum" ]] \
    || fail "offsite: s3://$offsite_bucket/$key does not match ${name}_${stamp}.tar.gz (storage: $size bytes, md5 $etag, sha256 $recorded; local: $bytes bytes, md5 $md5, sha256 $sum)"
  echo "backup: offsite ${name}_data object=s3://$offsite_bucket/$key sha256=$sum bytes=$size"
}

offsite_retention() {  # deletes this script's objects whose name stamp is older than the offsite retention
  local cutoff listing key base removed=0
  cutoff=$(date -u -d "$offsite_retention_days days ago" +%Y%m%dT%H%M%SZ)
  listing=$(s3 s3api list-objects-v2 --bucket "$offsite_bucket" --prefix "$(offsite_key "")" --query 'Contents[].Key') \
    || fail "offsite: listing s3://$offsite_bucket failed: $(offsite_error)"
  while IFS= read -r key; do
    [[ -n "$key" && "$key" != None ]] || continue
    base="${key#"$(offsite_key "")"}"
    [[ "$base" =~ ^(postgres|prometheus|grafana)_([0-9]{8}T[0-9]{6}Z)\.tar\.gz$ ]] || continue
    [[ "${BASH_REMATCH[2]}" < "$cutoff" ]] || continue
    s3 s3api delete-object --bucket "$offsite_bucket" --key "$key" >/dev/null \
      || fail "offsite: deleting s3://$offsite_bucket/$key failed: $(offsite_error)"
    echo "backup: offsite retention removed s3://$offsite_bucket/$key"
    removed=$((removed + 1))
  done < <(tr '\t' '\n' <<<"$listing")
  echo "backup: offsite OK ${#NAMES[@]} objects in s3://$offsite_bucket/$offsite_prefix (retention $offsite_retention_days days: removed $removed old object(s))"
}

# --- preflight: every source must be there before anything is snapshotted or dumped ---------------------------------------
if [[ "$mode" == compose ]]; then
  pick_helper_image
  for name in "${NAMES[@]}"; do volume_of "$name" >/dev/null; done
  container_of postgres >/dev/null
  container_of prometheus >/dev/null
else
  for name in "${NAMES[@]}"; do
    [[ -d "$data_dir/$name" ]] || fail "${name}_data: directory $data_dir/$name does not exist"
  done
fi
[[ -z "$offsite_url" ]] || offsite_bucket_ready

backup_postgres
backup_prometheus
backup_grafana

# --- all three succeeded: move into place, then repoint the links -------------------------------------------------------
for name in "${NAMES[@]}"; do
  chmod 0600 "$staging/$name.tar.gz"
  mv -n -- "$staging/$name.tar.gz" "$dest/${name}_${stamp}.tar.gz"
  [[ ! -e "$staging/$name.tar.gz" ]] || fail "${name}_data: could not move the archive into $dest"
done
for name in "${NAMES[@]}"; do
  # A new link renamed over the old one: the link switches atomically, never dangling in between.
  ln -sfn -- "${name}_${stamp}.tar.gz" "$dest/.${name}_latest.tmp"
  mv -fT -- "$dest/.${name}_latest.tmp" "$dest/${name}_latest.tar.gz"
done
for name in "${NAMES[@]}"; do
  archive="$dest/${name}_${stamp}.tar.gz"
  sum=$(sha256sum "$archive" | cut -d' ' -f1)
  bytes=$(stat -c %s "$archive")
  echo "backup: ${name}_data method=${method[$name]} archive=$archive sha256=$sum bytes=$bytes"
done
if [[ "${method[grafana]}" == directory-copy-no-db ]]; then
  echo "backup: note: grafana_data holds no grafana.db (Grafana has not run on it): the directory was archived as is"
fi

# --- offsite: every archive of this run copied and checked, then the offsite retention -----------------------------------
if [[ -n "$offsite_url" ]]; then
  for name in "${NAMES[@]}"; do offsite_upload "$name"; done
  offsite_retention
fi

# --- retention: only this script's own timestamped archives, never the links or anything else in DEST -------------------
removed=0
for name in "${NAMES[@]}"; do
  while IFS= read -r -d '' old; do
    rm -f -- "$old"
    echo "backup: retention removed $old"
    removed=$((removed + 1))
  # 9>&-: the lock's descriptor must not outlive this script in a process substitution nobody waits for.
  done < <(find "$dest" -maxdepth 1 -type f -name "${name}_[0-9]*T[0-9]*Z.tar.gz" -mtime "+$retention_days" -print0 9>&-)
done
echo "backup: OK ${#NAMES[@]} archives in $dest (retention $retention_days days: removed $removed old archive(s))"
