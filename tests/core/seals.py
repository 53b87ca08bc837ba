"""Helpers for tests of seals stored in git: forging a seal commit the way someone with push access (but without the
signing key) would, bare remotes, clones, and SSH signing keys."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from conftest import git

from sealgate.kernel.fsutil import pretty_json


def run_git(cwd: Path, *args: str, data: bytes | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, input=data, capture_output=True, check=True, env={**os.environ, **(env or {})}
    )
    return done.stdout.decode().strip()


def tag_message(root: Path, tag: str) -> str:
    """The tag's message without a signature block (a forger cannot sign)."""
    message = git(root, "tag", "-l", "--format=%(contents)", tag)
    return message.split("-----BEGIN ")[0].rstrip() + "\n"


def forge_seal(
    root: Path, tag: str, files: dict[str, bytes | None], *, consistent: bool = False, retag: bool = True
) -> str:
    """A seal commit made by hand from TAG's: `files` (names under seals/<ID>/) replaced, None deletes one; the tag
    re-pointed at it with the same message. `consistent` also rewrites the manifest's digests, seal.json's and the
    tag message's manifest digest to match: a forgery by someone who knows the format (but holds no signing key)."""
    seal = git(root, "rev-parse", f"{tag}^{{commit}}")
    judged = git(root, "rev-parse", f"{seal}^")
    message = tag_message(root, tag)
    match = re.search(r"^sprint: (\S+)$", message, re.M)
    assert match, message
    folder = f"seals/{match[1]}"
    files = dict(files)
    if consistent:
        manifest = json.loads(git(root, "show", f"{seal}:{folder}/manifest.json"))
        entries = []
        for entry in manifest["files"]:
            name = entry["name"]
            if name in files and files[name] is None:
                continue
            if name in files:
                entry = {"name": name, "sha256": hashlib.sha256(files[name] or b"").hexdigest()}
            entries.append(entry)
        listed = {entry["name"] for entry in entries}
        entries += [  # a file added to the seal is listed too, as a forger who knows the format would list it
            {"name": name, "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in files.items()
            if data is not None and name not in listed and name.startswith("eixo_")
        ]
        manifest["files"] = sorted(entries, key=lambda entry: entry["name"])
        manifest_bytes = pretty_json(manifest)
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        files["manifest.json"] = manifest_bytes
        record = json.loads(git(root, "show", f"{seal}:{folder}/seal.json"))
        record["manifest_sha256"] = digest
        files["seal.json"] = pretty_json(record)
        message = re.sub(r"^manifest-sha256: \S+$", f"manifest-sha256: {digest}", message, flags=re.M)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        run_git(root, "read-tree", seal, env=env)
        for name, data in files.items():
            path = f"{folder}/{name}"
            if data is None:
                run_git(root, "update-index", "--force-remove", path, env=env)
            else:
                blob = run_git(root, "hash-object", "-w", "--stdin", data=data)
                run_git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = run_git(root, "write-tree", env=env)
    forged = run_git(root, "commit-tree", tree, "-p", judged, "-m", "forged seal")
    if retag:
        run_git(root, "tag", "-f", "-a", tag, "-m", message, forged)
    return forged


def sealed_file(root: Path, tag: str, name: str) -> bytes:
    sprint = re.search(r"^sprint: (\S+)$", tag_message(root, tag), re.M)
    assert sprint
    return subprocess.run(
        ["git", "show", f"{tag}^{{commit}}:seals/{sprint[1]}/{name}"], cwd=root, capture_output=True, check=True
    ).stdout


def edit_json(data: bytes, change: dict[str, object]) -> bytes:
    """The statement with its first check's fields changed (what a forger would do to turn a result around)."""
    document = json.loads(data)
    document["predicate"]["checks"][0].update(change)
    return pretty_json(document)


def bare_remote(tmp_path: Path, name: str = "remote.git") -> Path:
    remote = tmp_path / name
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    return remote


def clone(tmp_path: Path, remote: Path, name: str, *extra: str) -> Path:
    dest = tmp_path / name
    git(tmp_path, "clone", "-q", *extra, str(remote), str(dest))
    git(dest, "config", "user.name", "Sealgate Reviewer")
    git(dest, "config", "user.email", "reviewer@example.invalid")
    return dest


def ssh_key(tmp_path: Path, name: str) -> Path:
    key = tmp_path / "keys" / name
    key.parent.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def allow_signers(tmp_path: Path, *entries: tuple[str, Path]) -> Path:
    """An allowed-signers file: `<principal> <public key>` per line."""
    path = tmp_path / "keys" / "allowed_signers"
    lines = []
    for principal, key in entries:
        kind, blob = Path(f"{key}.pub").read_text().split()[:2]
        lines.append(f"{principal} {kind} {blob}")
    path.write_text("\n".join(lines) + "\n")
    return path


def configure_signing(root: Path, key: Path, allowed: Path) -> None:
    git(root, "config", "gpg.format", "ssh")
    git(root, "config", "user.signingKey", str(key))
    git(root, "config", "gpg.ssh.allowedSignersFile", str(allowed))
