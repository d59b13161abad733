"""The one boundary for what a scan reads from outside: paths and JSON.

Every path that comes out of a scan (an analyser's finding, a CI artifact's ruff or eslint JSON, tsc
text, a check-run annotation) goes through ``confined_path``: normalised, and refused unless it stays
inside the repository. Every JSON document a repository or its CI supplies goes through ``json_loads``:
non-finite and absurd numbers and deep nesting are refused as ``ValueError``, never an ``OverflowError``
or a ``RecursionError`` that ends a scan.
"""

import json
import math
import posixpath
from pathlib import Path
from typing import Any

MAX_PATH = 1000  # the finding's path column
MAX_DEPTH = 64  # no tool's output nests deeper; a hostile document does
MAX_INT = 2**63
# Absolute prefixes of a CI runner's checkout: ``<prefix><repo>/<repo>/<path>`` on GitHub's hosted
# runners, ``<prefix><path>`` in a container job.
RUNNER_PREFIXES = (("/home/runner/work/", 2), ("/github/workspace/", 0))


def confined_path(path: object, root: str | Path | None = None) -> str | None:
    """``path`` relative to the repository (forward slashes, no ``.`` or ``..``), "" for the repository
    itself, or None when it is no path inside the repository: ``../`` out, absolute elsewhere, NUL,
    control characters, or longer than a column holds. An absolute path under ``root`` (where the
    analyser ran) or under a CI runner's checkout is made relative first."""
    if not isinstance(path, str) or len(path) > 4 * MAX_PATH:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return None
    path = path.replace("\\", "/")
    if path.startswith("/"):
        path = _relative_absolute(path, root)
        if path is None:
            return None
    if not path:
        return ""
    normal = posixpath.normpath(path)
    if normal == ".":
        return ""
    if normal == ".." or normal.startswith(("../", "/")) or len(normal) > MAX_PATH:
        return None
    return normal


def _relative_absolute(path: str, root: str | Path | None) -> str | None:
    candidates = []
    if root:
        candidates.append(str(Path(root)).rstrip("/") + "/")
        candidates.append(str(Path(root).resolve()).rstrip("/") + "/")
    for base in candidates:
        if path.startswith(base):
            return path[len(base) :]
    for prefix, skip in RUNNER_PREFIXES:
        if path.startswith(prefix):
            rest = path[len(prefix) :].split("/")
            return "/".join(rest[skip:]) if len(rest) > skip else None
    return None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"the number {name} is refused")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20:
        raise ValueError("an integer of more than 20 digits is refused")
    value = int(text)
    if abs(value) >= MAX_INT:
        raise ValueError("an integer out of range is refused")
    return value


def json_loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for documents from outside; ``ValueError`` for anything it refuses."""
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except RecursionError as exc:
        raise ValueError("the document nests too deeply") from exc
    stack = [(value, 1)]
    while stack:  # iterative: the depth check itself must not recurse
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                raise ValueError(f"the document nests deeper than {max_depth} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return value


def bounded_int(value: object, *, low: int = 0, high: int = 2**31 - 1) -> int | None:
    """``value`` when it is an int in ``[low, high]`` (a line or column from outside), else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def text(value: object, limit: int = 5000) -> str:
    """``value`` when it is a string (cut to ``limit``), else "": a message field from outside."""
    return value[:limit] if isinstance(value, str) else ""
