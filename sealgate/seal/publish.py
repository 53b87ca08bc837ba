"""`sealgate publish [REMOTE]`: push what a seal's verification needs, never forcing anything.

The seal tags of the sprints in `sprint/` go (a tag brings its seal commit, and with it `seals/<ID>/`: the evidence,
the manifest, the report, the record); the checked-out branch goes too when its tip is a seal commit — the branch
`seal` fast-forwarded — so clones of the branch without tags hold the seal as well. Work committed after the seal is
not pushed by publish: that is the user's own push.
"""

from __future__ import annotations

from collections.abc import Callable

from sealgate.kernel.errors import EXIT_OK, EXIT_REFUSED, InputError, Problem, SealgateError
from sealgate.kernel.gitrepo import Repo
from sealgate.seal.lifecycle import sprint_states

Printer = Callable[[str], None]

# `git push --porcelain` flags (git-push(1), OUTPUT).
_FLAG_WORDS = {" ": "pushed", "+": "forced", "-": "deleted", "*": "pushed", "=": "up to date", "!": "REFUSED"}


def publish(repo: Repo, remote: str, out: Printer) -> int:
    if remote not in repo.remotes():
        raise InputError(Problem(f"remote {remote}", "does not exist", f"add it: git remote add {remote} <url>"))
    seals = [s for s in sprint_states(repo) if s.ref is not None and s.ref.tag is not None and s.kind != "broken"]
    if not seals:
        out("nothing to publish: no sprint in sprint/ has a seal tag here")
        return EXIT_OK
    refspecs = [f"refs/tags/{s.ref.tag_name}:refs/tags/{s.ref.tag_name}" for s in seals if s.ref]
    branch = repo.current_branch()
    if branch and repo.head() in {s.ref.seal_commit for s in seals if s.ref}:
        refspecs.append(f"refs/heads/{branch}:refs/heads/{branch}")
    elif branch:
        out(f"branch {branch} not pushed: its tip is not a seal commit (push your own work yourself)")
    done = repo.run("push", "--porcelain", remote, *refspecs, env={"GIT_TERMINAL_PROMPT": "0"}, check=False)
    refused = 0
    reported = 0
    for line in done.stdout.decode(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0] not in _FLAG_WORDS:
            continue
        reported += 1
        ref = parts[1].split(":")[-1].removeprefix("refs/tags/").removeprefix("refs/heads/")
        word = _FLAG_WORDS[parts[0]]
        if parts[0] == "!":
            refused += 1
            out(f"REFUSED {ref} by {remote}: {parts[2]} (publish never forces: merge or fetch, then publish again)")
        else:
            out(f"{word:<10} {ref} → {remote}")
    if done.returncode != 0 and not reported:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise SealgateError(f"git push {remote} failed: {said[-1] if said else f'exit {done.returncode}'}")
    return EXIT_REFUSED if refused or done.returncode != 0 else EXIT_OK
