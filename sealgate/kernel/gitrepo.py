"""The few git facts sealgate relies on, through GitPython."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import git

from sealgate.kernel.errors import InputError, Problem, SealgateError


@dataclass(frozen=True)
class TagInfo:
    name: str
    commit: str
    annotated: bool
    message: str
    signed: bool


class Repo:
    def __init__(self, root: Path) -> None:
        try:
            self._repo = git.Repo(root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise InputError(
                Problem(str(root), "not inside a git repository", "sealgate judges a commit: run it in a clone")
            ) from None
        if self._repo.working_tree_dir is None:
            raise InputError(Problem(str(root), "a bare repository has no working tree to judge"))
        self.root = Path(self._repo.working_tree_dir)

    def head(self) -> str:
        try:
            return self._repo.head.commit.hexsha
        except ValueError:
            raise InputError(
                Problem(str(self.root), "the repository has no commit yet", "commit your work first")
            ) from None

    def is_dirty(self) -> bool:
        """Modified, staged or untracked-and-not-ignored files; generated outputs are git-ignored so never count."""
        return self._repo.is_dirty(untracked_files=True)

    def dirty_paths(self) -> list[str]:
        out = self._repo.git.status("--porcelain", "--untracked-files=all")
        return [line[3:] for line in out.splitlines() if line.strip()]

    def operator(self) -> str:
        reader = self._repo.config_reader()
        name = reader.get_value("user", "name", default="")
        email = reader.get_value("user", "email", default="")
        return f"{name} <{email}>" if email else (str(name) or "unknown")

    def tag(self, name: str) -> TagInfo | None:
        try:
            ref = self._repo.tags[name]
        except (IndexError, KeyError):
            return None
        tag_object = ref.tag
        if tag_object is None:
            return TagInfo(name, ref.commit.hexsha, False, "", False)
        message = tag_object.message
        signed = "-----BEGIN PGP SIGNATURE-----" in message or "-----BEGIN SSH SIGNATURE-----" in message
        return TagInfo(name, ref.commit.hexsha, True, message, signed)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._repo.is_ancestor(ancestor, descendant)

    def create_tag(self, name: str, message: str, sign: bool = False, target: str = "HEAD") -> None:
        """An annotated tag on `target`; `sign` makes git sign it with the user's configured GPG or SSH key."""
        self._repo.git.tag("-s" if sign else "-a", name, "-m", message, target)

    def verify_tag_signature(self, name: str) -> tuple[bool, str]:
        try:
            out = self._repo.git.execute(["git", "tag", "-v", name], with_extended_output=True)
        except git.GitCommandError as exc:
            return False, (exc.stderr or str(exc)).strip()
        return True, (out[2] or "").strip()

    # --- plumbing: exact bytes in and out, for the seal commit and for reading seals back from git objects ---------
    def run(
        self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """`git ARGS` in this repository; with `check`, a failure is one line naming the command and git's words."""
        done = subprocess.run(
            ["git", *args],
            cwd=self.root,
            input=input,
            capture_output=True,
            env={**os.environ, **env} if env else None,
        )
        if check and done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise SealgateError(f"git {' '.join(args[:3])} failed: {said[-1] if said else f'exit {done.returncode}'}")
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()

    def show(self, commit: str, path: str) -> bytes | None:
        """A file's bytes as of `commit`, None when the commit or the file is not in this repository."""
        done = self.run("cat-file", "blob", f"{commit}:{path}", check=False)
        return done.stdout if done.returncode == 0 else None

    def has_commit(self, sha: str) -> bool:
        return self.run("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0

    def parents(self, commit: str) -> list[str]:
        return self.out("rev-list", "--parents", "-n", "1", commit).split()[1:]

    def current_branch(self) -> str | None:
        done = self.run("symbolic-ref", "-q", "--short", "HEAD", check=False)
        return (done.stdout.decode().strip() or None) if done.returncode == 0 else None

    def remotes(self) -> list[str]:
        return self.out("remote").split()

    def config(self, key: str) -> str | None:
        done = self.run("config", "--get", key, check=False)
        return (done.stdout.decode().strip() or None) if done.returncode == 0 else None
