"""A repository's files on disk: its local path, or a shallow clone of its default branch.

The token goes to git as an ``http.extraheader`` through git's environment configuration
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``), so it is never in the clone URL,
the command line (``ps``), the clone's ``.git/config`` or an error message.
"""

import base64
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from codehealth.errors import CodehealthError
from codehealth.models import Repository
from codehealth.sandbox import beat_interval
from juggernaut.redaction import scrub


def _git_env(token: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG")}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"})
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraheader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


def _clean(text: str, token: str) -> str:
    text = scrub(text)
    return text.replace(token, "[redacted]") if token else text


def local_path_check(user, path: str) -> str:
    """The directory ``path`` resolves to, when ``user`` may register it: only an admin, only under
    ``CODEHEALTH_LOCAL_ROOTS`` (none when empty), never the HQ's own directory or ``HQ_VAR_DIR`` (nor a
    directory holding either)."""
    if not getattr(user, "is_superuser", False):
        raise CodehealthError("admin_only", "only an admin registers a local path", status=403)
    if "\x00" in path or not Path(path).is_absolute():
        raise CodehealthError(
            "bad_local_path", "local_path must be an absolute path to a directory", status=422
        )
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real is None or not real.is_dir():
        raise CodehealthError(
            "bad_local_path", "local_path must be an absolute path to a directory", status=422
        )
    return local_path_allowed(real)


def local_path_allowed(real: Path) -> str:
    """``real`` (a resolved directory) when the rules of ``local_path_check`` allow it, checked again at
    every scan: a registration made before the rules, or a root since removed, is not scanned."""
    for own in (Path(settings.BASE_DIR).resolve(), Path(settings.VAR_DIR).resolve()):
        if real.is_relative_to(own) or own.is_relative_to(real):
            raise CodehealthError(
                "local_path_refused", "the HQ's own files and data directory are never scanned", status=422
            )
    roots = [Path(r).resolve() for r in settings.CODEHEALTH_LOCAL_ROOTS if Path(r).is_absolute()]
    if not any(real.is_relative_to(root) for root in roots):
        raise CodehealthError(
            "local_path_refused",
            "local paths are allowed only under CODEHEALTH_LOCAL_ROOTS"
            + ("" if roots else ", and none is set"),
            status=422,
        )
    return str(real)


def head_sha(path: Path) -> str:
    """The checkout's commit, or "" when it is not a git repository."""
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argv, no shell; the path is an argument
            ["git", "-C", str(path), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as the clone uses
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def head_branch(path: Path) -> str:
    """The branch the checkout has out (``master``, ``main``, ...), or "" when detached or not git."""
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argv, no shell; the path is an argument
            ["git", "-C", str(path), "symbolic-ref", "--quiet", "--short", "HEAD"],  # noqa: S607 - as head_sha
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    branch = result.stdout.strip() if result.returncode == 0 else ""
    return branch if re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", branch) else ""


def _run_beating(command: list[str], env: dict, beat: Callable[[], None] | None) -> tuple[int, str]:
    """Run ``command`` within ``CODEHEALTH_CLONE_TIMEOUT_SECONDS``, calling ``beat`` while it runs;
    (its exit code, its stderr). The command is killed if it overruns or ``beat`` raises."""
    end = time.monotonic() + settings.CODEHEALTH_CLONE_TIMEOUT_SECONDS
    proc = subprocess.Popen(  # noqa: S603 - argv without a shell; url and branch are arguments after their options
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(command, settings.CODEHEALTH_CLONE_TIMEOUT_SECONDS)
            try:
                _, stderr = proc.communicate(timeout=min(left, beat_interval()) if beat else left)
                return proc.returncode, stderr
            except subprocess.TimeoutExpired:
                if beat is not None:
                    beat()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def clone(
    url: str, dest: Path, *, branch: str, token: str = "", beat: Callable[[], None] | None = None
) -> str:
    """A shallow, single-branch clone of ``branch`` into ``dest``; its commit sha. ``beat``: called
    while git runs (the scan's heartbeat)."""
    command = [
        "git",
        "clone",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        "--branch",
        branch,
        url,
        str(dest),
    ]
    try:
        returncode, stderr = _run_beating(command, _git_env(token), beat)
    except subprocess.TimeoutExpired as exc:
        raise CodehealthError(
            "clone_failed", "the clone did not finish within the timeout", status=502
        ) from exc
    except OSError as exc:
        raise CodehealthError(
            "clone_failed", f"git could not run: {exc.__class__.__name__}", status=502
        ) from exc
    if returncode != 0:
        detail = _clean(stderr.strip().splitlines()[-1] if stderr.strip() else "", token)
        raise CodehealthError("clone_failed", f"git clone failed: {detail[:300]}", status=502)
    return head_sha(dest)


@contextmanager
def repository_checkout(
    repository: Repository, *, beat: Callable[[], None] | None = None
) -> Iterator[tuple[Path, str]]:
    """``(path, commit sha)`` of the repository's files for as long as the block runs; a clone is
    removed afterwards, a local path is left as it is (the analysers work on a scratch copy of
    either: ``codehealth.sandbox``)."""
    if repository.local_path:
        path = Path(repository.local_path)
        if not path.is_dir():
            raise CodehealthError(
                "no_checkout", f"{repository.local_path[:300]} is not a directory", status=422
            )
        path = Path(local_path_allowed(path.resolve()))
        yield path, head_sha(path)
        return
    base = Path(settings.CODEHEALTH_CLONE_DIR)
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="clone-", dir=base))
    try:
        dest = workdir / "repo"
        sha = clone(
            repository.clone_url,
            dest,
            branch=repository.default_branch,
            token=settings.GITHUB_TOKEN,
            beat=beat,
        )
        yield dest, sha
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
