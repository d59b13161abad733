"""Proof that an auto-PR's edits are safe, before they go out.

The edits of a file are applied to a scratch copy and must pass three checks: the file still compiles,
ruff's ``F`` rules (pyflakes: undefined names, redefinitions, ...) find nothing the original did not
have, and the name an unused-import removal takes away appears nowhere in what is left of the module
(its AST's names and attributes, or its string literals). When the whole set fails, each fix is tried
on its own on top of those already proven, and one that fails is dropped with its reason; the rest go
out.
"""

import ast
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from codehealth.lint import ruff_binary
from codehealth.untrusted import json_loads

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RUFF_TIMEOUT = 60
F = TypeVar("F")


def _pyflakes(name: str, text: str) -> Counter | None:
    """ruff's F findings of one file, as (rule, message) counts; None when ruff cannot run."""
    binary = ruff_binary()
    if not binary:
        return None
    with tempfile.TemporaryDirectory(prefix="codehealth-proof-") as scratch:
        file = Path(scratch) / name
        file.write_text(text, encoding="utf-8")
        try:
            done = subprocess.run(  # noqa: S603 - the HQ's own ruff, a fixed argv, no shell
                [binary, "check", "--isolated", "--no-cache", "--no-fix", "--exit-zero"]
                + ["--select", "F", "--output-format", "json", file.name],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=RUFF_TIMEOUT,
                check=False,
            )
            items = json_loads(done.stdout or "[]") if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None
    if not isinstance(items, list):
        return None
    return Counter((str(i.get("code")), str(i.get("message"))) for i in items if isinstance(i, dict))


def _names_in(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.update(_IDENT.findall(node.value))
    return names


def unproven(path: str, original: str, fixed: str, removed: set[str]) -> str:
    """Why ``fixed`` (``original`` with some edits) is not proven safe; "" when it is. ``removed``: the
    names unused-import removals take away."""
    if not path.endswith((".py", ".pyi")):
        return ""  # a frontend type's edit: not Python, nothing here to prove it by
    try:
        tree = ast.parse(fixed, filename=path)
    except (SyntaxError, ValueError) as exc:
        return f"the file would no longer compile: {str(exc)[:200]}"
    except (RecursionError, MemoryError):
        return "the file would be too deeply nested to compile"
    still = sorted(removed & _names_in(tree))
    if still:
        return f"'{still[0]}' would still be used in the module after its import is removed"
    before, after = _pyflakes(Path(path).name, original), _pyflakes(Path(path).name, fixed)
    if before is None or after is None:
        return "ruff could not run to check the result"
    new = after - before
    if new:
        (code, message), _ = new.most_common(1)[0]
        return f"ruff's {code} would find something new: {message[:200]}"
    return ""


def file_prove(
    path: str,
    original: str,
    fixes: list[F],
    *,
    apply: Callable[[str, list[F]], str],
    removed_by: Callable[[F], set[str]],
) -> tuple[str, list[F], list[tuple[F, str]]]:
    """``original`` with every fix of ``fixes`` that is proven safe, the fixes kept, and the fixes
    dropped with their reasons. ``apply`` applies fixes to a text (``ValueError`` when they do not
    fit); ``removed_by`` names what a fix takes away."""

    def attempt(chosen: list[F]) -> tuple[str, str]:
        try:
            text = apply(original, chosen)
        except ValueError as exc:
            return "", f"its edits do not fit the file: {exc}"
        removed = set().union(*(removed_by(f) for f in chosen)) if chosen else set()
        return text, unproven(path, original, text, removed)

    text, why = attempt(fixes)
    if not why:
        return text, list(fixes), []
    kept: list[F] = []
    dropped: list[tuple[F, str]] = []
    text = original
    for fix in fixes:
        candidate, why = attempt([*kept, fix])
        if why:
            dropped.append((fix, why))
        else:
            kept.append(fix)
            text = candidate
    return text, kept, dropped


def dropped_entry(path: str, line: int | None, rule: str, name: str, reason: str) -> dict:
    """What an auto-PR records of a fix it left out."""
    return {"path": path, "line": line, "rule": rule, "name": name, "reason": reason}
