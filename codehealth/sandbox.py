"""Where a scan touches a checkout: a child process with its own scratch copy, a deadline and limits.

``sandbox_run(source, work, deadline=...)`` forks a child that:

1. makes itself a process group (so the parent can kill it with everything it started, ruff included),
2. sets the operating system's own limits on itself (``resource.setrlimit``): address space
   (``CODEHEALTH_SCAN_MEMORY_MB`` more than it maps at the fork), CPU seconds (the deadline's), the
   largest file it may write, no core dumps; every process it starts inherits them; and an alarm a few
   seconds past the deadline, so it ends even if its parent is gone,
3. copies the checkout into a fresh directory of the system's temporary directory: regular files only,
   a file symlink only when it resolves inside the checkout (copied as a plain file), never a
   directory symlink, never a FIFO or device, nothing of ``.git`` or vendored directories, within a
   size cap,
4. when it runs as root and the user ``CODEHEALTH_SCAN_USER`` exists, hands the copy to that user and
   becomes it (``setgroups``/``setgid``/``setuid``): from then on it can write nothing the HQ owns.
   A process that is not root cannot switch users; it still works only on its copy, and nothing the
   analysers run can write (ruff runs ``--isolated --no-fix``),
5. clears its environment of everything but ``PATH`` and the locale (no secret reaches ruff),
6. runs ``work(copy)`` and writes its JSON-able answer to a pipe, then exits without running any of
   the parent's clean-up (``os._exit``: the parent's database connections are never touched).

The parent reads the answer until the deadline, calling ``beat()`` (the scan's heartbeat) every third of
``CODEHEALTH_SCAN_LEASE_SECONDS`` while it waits; should ``beat`` raise (the scan was taken over), the
child is killed and the error goes to the caller. Past the deadline the child's process group is killed and the
caller gets a ``CodehealthError`` saying so in words, as it does for a child that ran out of memory,
hit a limit or died. The answer is JSON, parsed by ``codehealth.untrusted.json_loads``: the parent
never unpickles anything a child wrote.
"""

import contextlib
import json
import os
import pwd
import resource
import selectors
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from codehealth.errors import CodehealthError
from codehealth.stale_refs import SKIP_DIRS
from codehealth.untrusted import json_loads

COPY_MAX_BYTES = 1024 * 1024 * 1024  # a checkout larger than this is not copied (nor analysed)
FILE_MAX_BYTES = 50 * 1024 * 1024  # larger files are left out of the copy: no analyser reads them
ANSWER_MAX_BYTES = 256 * 1024 * 1024
# Left out of the copy: what no analyser reads (ruff excludes these by default too). Test fixtures stay:
# the stale analysis skips them, ruff lints them.
COPY_SKIP = SKIP_DIRS - {"fixtures"}
_SIGNALS = {
    signal.SIGKILL: "it was killed (out of memory, or by the system)",
    signal.SIGXCPU: "it used up its CPU time",
    signal.SIGXFSZ: "it wrote a file larger than allowed",
    signal.SIGALRM: "it ran past its deadline",
    signal.SIGSEGV: "it crashed",
}


def sandbox_run(
    source: Path | str,
    work: Callable[[Path], Any],
    *,
    deadline: float,
    beat: Callable[[], None] | None = None,
) -> Any:
    """``work(copy)`` run in a child process on a scratch copy of ``source`` (see the module
    docstring), its answer as JSON data. ``deadline``: a ``time.monotonic()`` instant; ``beat``: called
    while the child runs, to say the scan is alive."""
    source = Path(source)
    if not source.is_dir():
        raise CodehealthError("no_checkout", "the checkout is not a directory", status=422)
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise CodehealthError("scan_timeout", _overrun(), status=504)
    base = Path(tempfile.mkdtemp(prefix="codehealth-scan-"))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(source, base, work, write_fd, timeout)
    os.close(write_fd)
    try:
        with contextlib.suppress(OSError):  # the child does it too: whichever runs first wins
            os.setpgid(pid, pid)
        answer, finished = _read(read_fd, deadline, beat)
        if not finished:
            _kill(pid)
            raise CodehealthError("scan_timeout", _overrun(), status=504)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(read_fd)
        _kill(pid)
        shutil.rmtree(base, ignore_errors=True)
    return _answer(answer, status)


def _overrun() -> str:
    return (
        f"the scan did not finish within {settings.CODEHEALTH_SCAN_TIMEOUT_SECONDS} s "
        "(CODEHEALTH_SCAN_TIMEOUT_SECONDS) and was stopped"
    )


def beat_interval() -> float:
    """How often a running scan beats: three times within its lease, so one late beat is no death."""
    return max(0.2, settings.CODEHEALTH_SCAN_LEASE_SECONDS / 3)


def _read(fd: int, deadline: float, beat: Callable[[], None] | None = None) -> tuple[bytes, bool]:
    """Everything the child writes until it closes the pipe (True) or the deadline passes (False),
    beating (when given ``beat``) while it waits."""
    chunks, size = [], 0
    interval = beat_interval()
    next_beat = time.monotonic() + interval
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return b"", False
            if beat is not None and now >= next_beat:
                beat()
                next_beat = now + interval
            if not selector.select(min(left, next_beat - now) if beat is not None else left):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks), True
            size += len(chunk)
            if size > ANSWER_MAX_BYTES:
                raise CodehealthError("scan_failed", "the analysis answered more than it may", status=502)
            chunks.append(chunk)


def _kill(pid: int) -> None:
    """Kill the child's whole process group (what it started too) and reap the child."""
    with contextlib.suppress(OSError):  # gone already
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # reaped already
        os.waitpid(pid, 0)


def _answer(data: bytes, status: int) -> Any:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        why = _SIGNALS.get(number, f"it was stopped by signal {signal.Signals(number).name}")
        raise CodehealthError("scan_failed", f"the analysis stopped: {why}", status=502)
    try:
        message = json_loads(data or b"{}", max_depth=1000)
    except ValueError as exc:
        raise CodehealthError(
            "scan_failed", "the analysis answered something unreadable", status=502
        ) from exc
    if not isinstance(message, dict) or "ok" not in message:
        raise CodehealthError("scan_failed", "the analysis ended without an answer", status=502)
    if not message["ok"]:
        raise CodehealthError(
            "scan_failed", str(message.get("error") or "the analysis failed")[:400], status=502
        )
    return message.get("result")


# --- the child --------------------------------------------------------------------------------------


def _child(source: Path, base: Path, work: Callable[[Path], Any], write_fd: int, timeout: float) -> None:
    code = 1
    try:
        try:
            os.setpgid(0, 0)
            for number in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(number, signal.SIG_DFL)  # the jobs process's own handlers are not ours
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails, it does not kill
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            # a wall-clock end of its own: should the parent die (its jobs process killed), the child,
            # in a process group of its own, still ends soon after the deadline
            signal.alarm(int(timeout) + 5)
            limits_set(timeout)
            copy = base / "repo"
            copy_confined(source, copy)
            privileges_drop(base)
            _environment_reset(base)
            os.chdir(copy)
            message = {"ok": True, "result": work(copy)}
        except MemoryError:
            message = {
                "ok": False,
                "error": f"the analysis ran out of memory (CODEHEALTH_SCAN_MEMORY_MB, "
                f"{settings.CODEHEALTH_SCAN_MEMORY_MB} MB)",
            }
        except RecursionError:
            message = {"ok": False, "error": "the analysis met code nested too deeply to read"}
        except ImportError as exc:
            message = {
                "ok": False,
                "error": f"the analysers are not installed ({exc.name or 'codehealth.scan'})",
            }
        except CodehealthError as exc:
            message = {"ok": False, "error": exc.message}
        except BaseException as exc:  # whatever it was, the parent hears it in words
            message = {"ok": False, "error": f"the analysis failed: {exc.__class__.__name__}"}
        data = json.dumps(message, default=_plain, allow_nan=False).encode()
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
        code = 0
    except BaseException:  # the child must reach os._exit, whatever happens
        code = 1
    finally:
        os._exit(code)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{value.__class__.__name__} is not JSON data")


def _address_space() -> int:
    """The bytes of address space this process has mapped (0 where /proc does not say)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def limits_set(timeout: float) -> None:
    """The child's limits, inherited by everything it starts (see the module docstring). The address
    space cap is what the analysis may add to what the forked child already maps (a jobs process's
    size is not the analysis's), and applies whole to every process it starts (ruff)."""
    memory = _address_space() + settings.CODEHEALTH_SCAN_MEMORY_MB * 1024 * 1024
    cpu = int(timeout) + 1
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, FILE_MAX_BYTES),
        (resource.RLIMIT_CORE, 0),
    ):
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, value if limit != resource.RLIMIT_CPU else value + 5))


def copy_confined(source: Path, dest: Path) -> None:
    """Copy the checkout's regular files (see the module docstring), never following a directory
    symlink or a symlink out of ``source``; ``CodehealthError`` past ``COPY_MAX_BYTES``."""
    root = os.path.realpath(source)
    total = 0
    os.makedirs(dest, mode=0o755)
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        rel = os.path.relpath(folder, root)
        target = dest if rel == "." else dest / rel
        kept = []
        for name in dirnames:
            full = os.path.join(folder, name)
            if name in COPY_SKIP or name.endswith(".egg-info") or os.path.islink(full):
                continue  # a directory symlink is never followed: a loop would never end
            os.makedirs(target / name, mode=0o755, exist_ok=True)
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            total += _copy_file(os.path.join(folder, name), target / name, root)
            if total > COPY_MAX_BYTES:
                raise CodehealthError(
                    "too_large", f"the checkout is larger than {COPY_MAX_BYTES // 2**20} MB", status=422
                )


def _copy_file(path: str, target: Path, root: str) -> int:
    """Bytes copied of one entry: a regular file, or a symlink to one inside ``root``; 0 otherwise."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            path = os.path.realpath(path)
            if os.path.commonpath([path, root]) != root:
                return 0  # a symlink out of the checkout (``helpers.py -> ../../../../etc/passwd``)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > FILE_MAX_BYTES:
            return 0  # a FIFO, a device or a directory: nothing an analyser reads
        with os.fdopen(os.dup(fd), "rb") as src, open(target, "xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return info.st_size
    except OSError:
        return 0
    finally:
        os.close(fd)


def privileges_drop(base: Path) -> bool:
    """As root, hand ``base`` to ``CODEHEALTH_SCAN_USER`` and become that user; True when it did.
    A process that is not root, or without such a user, stays who it is (see the module docstring)."""
    if os.geteuid() != 0 or not settings.CODEHEALTH_SCAN_USER:
        return False
    try:
        user = pwd.getpwnam(settings.CODEHEALTH_SCAN_USER)
    except KeyError:
        return False
    for folder, dirnames, filenames in os.walk(base):
        os.lchown(folder, user.pw_uid, user.pw_gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(folder, name), user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    if os.geteuid() == 0 or os.getuid() == 0:
        raise CodehealthError("scan_failed", "the analysis could not give up root", status=500)
    return True


def _environment_reset(base: Path) -> None:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE")}
    os.environ.clear()
    os.environ.update(keep | {"HOME": str(base), "TMPDIR": str(base)})
    tempfile.tempdir = str(base)
