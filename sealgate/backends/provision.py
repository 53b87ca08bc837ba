"""Finding — and, when missing, provisioning — the Prometheus and Alertmanager binaries of the local backend.

Order, first hit wins: an environment variable naming the binary, PATH, the per-user cache
(`${XDG_CACHE_HOME:-~/.cache}/sealgate/bin/<name>-<version>/`), then a download the way envtest provisions its
control plane: the official release archive of the pinned version, its sha256 checked against a digest pinned in
this file, unpacked into the cache. A digest mismatch, a missing pinned digest or a failed download is refused
with the exact command that installs the binary by hand: no unverified binary ever runs.

The release site's base URL is overridable (SEALGATE_RELEASES_URL) so tests serve archives from 127.0.0.1 and
mirrors can be used; the path below it keeps the release site's layout:
`<base>/prometheus/<project>/releases/download/v<version>/<project>-<version>.linux-<arch>.tar.gz`.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sealgate.backends.errors import StackError
from sealgate.kernel.errors import Problem
from sealgate.kernel.fsutil import sha256_file

DEFAULT_RELEASES_URL = "https://github.com"
DOWNLOAD_TIMEOUT = 60.0  # seconds without progress before a download is abandoned (urllib socket timeout)


@dataclass(frozen=True)
class Release:
    project: str  # release project (archive name prefix)
    version: str
    binaries: tuple[str, ...]  # names inside the archive's top directory; the first is the one the backend runs
    env_var: str  # names a binary to use instead of any lookup
    path_names: tuple[str, ...]  # names looked up on PATH, in order (Debian renames alertmanager)
    # sha256 of `<project>-<version>.linux-<arch>.tar.gz`, as published in the release's sha256sums.txt.
    # None = no digest could be confirmed: provisioning for that arch refuses rather than trusting a download.
    sha256: dict[str, str | None]


# Digests copied from public pins of these exact archives (the release's own sha256sums.txt is not reachable from
# here). prometheus 2.51.0 linux-amd64: cashapp/hermit-packages prometheus.hcl `sha256sums`. alertmanager 0.27.0
# linux-amd64 and linux-arm64: boxcutter/oci prometheus/alertmanager/docker-bake.hcl and the boxcutter_prometheus
# Chef recipe (they agree). prometheus 2.51.0 linux-arm64: no public pin found -> unknown, refused.
RELEASES: dict[str, Release] = {
    "prometheus": Release(
        project="prometheus",
        version="2.51.0",
        binaries=("prometheus", "promtool"),
        env_var="SEALGATE_PROMETHEUS_BIN",
        path_names=("prometheus",),
        sha256={
            "amd64": "ce8b57b5ab3ae5831af3fe9d22d76f91924a0d152f24ecc7cd0b5c02a3c4e3cf",
            "arm64": None,  # UNKNOWN: not confirmed from any published source; provisioning refuses on arm64
        },
    ),
    "alertmanager": Release(
        project="alertmanager",
        version="0.27.0",
        binaries=("alertmanager", "amtool"),
        env_var="SEALGATE_ALERTMANAGER_BIN",
        path_names=("alertmanager", "prometheus-alertmanager"),
        sha256={
            "amd64": "23c3f5a3c73de91dbaec419f3c492bef636deb02680808e5d842e6553aa16074",
            "arm64": "a754304b682cec61f4bd5cfc029b451a30134554b3a2f21a9c487e12814ff8f3",
        },
    ),
}

DEBIAN_PACKAGES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}


@dataclass(frozen=True)
class Binary:
    name: str
    path: Path
    source: str  # env | path | cache | download
    version: str  # first line of `<binary> --version`, as the binary reports it


def machine_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sealgate" / "bin"


def releases_url() -> str:
    return (os.environ.get("SEALGATE_RELEASES_URL") or DEFAULT_RELEASES_URL).rstrip("/")


def archive_name(release: Release, arch: str) -> str:
    return f"{release.project}-{release.version}.linux-{arch}.tar.gz"


def archive_url(release: Release, arch: str, base: str | None = None) -> str:
    base = (base or releases_url()).rstrip("/")
    return f"{base}/prometheus/{release.project}/releases/download/v{release.version}/{archive_name(release, arch)}"


def manual_install_hint(name: str) -> str:
    """The command that installs the binary by hand on this system."""
    release = RELEASES[name]
    if Path("/etc/debian_version").exists():
        packages = " ".join(DEBIAN_PACKAGES.values())
        return f"install it by hand: apt-get install -y {packages}  (or set {release.env_var} to a {name} binary)"
    return (
        f"install it by hand: download {archive_url(release, machine_arch(), DEFAULT_RELEASES_URL)}, verify it "
        f"against the release's sha256sums.txt, and put `{name}` on PATH (or set {release.env_var})"
    )


def binary_version(path: Path) -> str:
    """Run `<binary> --version`: proves the binary executes on this machine (arch, libc) and names its version."""
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(Problem(str(path), f"does not run: {exc}")) from None
    output = (done.stdout or done.stderr).strip()
    if done.returncode != 0:
        raise StackError(Problem(str(path), f"`--version` exited {done.returncode}: {output[:200]}"))
    return output.splitlines()[0] if output else ""


def cached_binary(name: str, cache: Path | None = None) -> Path | None:
    release = RELEASES[name]
    candidate = (cache or cache_root()) / f"{name}-{release.version}" / release.binaries[0]
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def find_binary(name: str, cache: Path | None = None) -> Binary | None:
    """env var, then PATH, then the cache; None when none has it (nothing is downloaded here)."""
    release = RELEASES[name]
    from_env = os.environ.get(release.env_var)
    if from_env:
        path = Path(from_env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise StackError(Problem(release.env_var, f"{from_env} is not an executable file"))
        return Binary(name, path, "env", binary_version(path))
    for candidate in release.path_names:
        found = shutil.which(candidate)
        if found:
            return Binary(name, Path(found), "path", binary_version(Path(found)))
    cached = cached_binary(name, cache)
    if cached is not None:
        return Binary(name, cached, "cache", binary_version(cached))
    return None


def _refuse(name: str, what: str) -> StackError:
    return StackError(Problem(f"provisioning {name}", what, manual_install_hint(name)))


def _download(url: str, dest: Path, name: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise _refuse(name, f"download of {url} failed: {exc}") from None


def _unpack(archive: Path, release: Release, arch: str, dest: Path, name: str) -> None:
    """Extract only the release's binaries, as regular files, flat into `dest` (no paths from the archive are
    trusted: a crafted member name cannot write outside `dest`)."""
    top = f"{release.project}-{release.version}.linux-{arch}"
    wanted = {f"{top}/{binary}": binary for binary in release.binaries}
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                target = wanted.get(member.name.lstrip("./"))
                if target is None or not member.isfile():
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(dest / target, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.chmod(dest / target, 0o755)
                found.add(target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _refuse(name, f"{archive.name} is not a readable release archive: {exc}") from None
    if release.binaries[0] not in found:
        raise _refuse(name, f"{archive.name} has no {top}/{release.binaries[0]}")


def provision(
    name: str,
    *,
    base_url: str | None = None,
    cache: Path | None = None,
    arch: str | None = None,
    sha256: str | None = None,
    progress: object = None,
) -> Binary:
    """Download, verify and unpack the pinned release of `name` into the cache; reuse the cache when present.

    `sha256` replaces the pinned digest (tests serve an archive of their own making); production callers leave it
    None so only the pinned digest is trusted.
    """
    release = RELEASES[name]
    cache = cache or cache_root()
    cached = cached_binary(name, cache)
    if cached is not None:
        return Binary(name, cached, "cache", binary_version(cached))
    arch = arch or machine_arch()
    expected = sha256 or release.sha256.get(arch)
    url = archive_url(release, arch, base_url)
    if not expected:
        raise _refuse(
            name, f"no pinned sha256 for {archive_name(release, arch)}: refusing to run an unverified download"
        )
    say = progress if callable(progress) else (lambda _msg: None)
    say(f"stack: provisioning {name} {release.version} from {url}")
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / f"{name}-{release.version}"
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=cache) as scratch:
        archive = Path(scratch) / archive_name(release, arch)
        _download(url, archive, name)
        actual = sha256_file(archive)
        if actual != expected.lower():
            raise _refuse(name, f"sha256 mismatch for {url}: expected {expected}, got {actual}; archive discarded")
        unpacked = Path(scratch) / "unpacked"
        unpacked.mkdir()
        _unpack(archive, release, arch, unpacked, name)
        (unpacked / "SOURCE").write_text(f"{url}\nsha256 {actual}\n")
        # Rename into place last: a crash or a concurrent run leaves either no cache entry or a complete one.
        try:
            os.rename(unpacked, final)
        except OSError:
            if cached_binary(name, cache) is None:
                raise
    binary = final / release.binaries[0]
    return Binary(name, binary, "download", binary_version(binary))


def resolve(name: str, *, allow_download: bool = True, progress: object = None) -> Binary:
    """The binary the local backend runs for `name` (prometheus | alertmanager)."""
    found = find_binary(name)
    if found is not None:
        return found
    if not allow_download:
        raise _refuse(name, f"{name} not found ({RELEASES[name].env_var}, PATH, {cache_root()})")
    return provision(name, progress=progress)
