"""Static-analysis results as findings: ruff run on a checkout, and parsers for CI output.

The parsers are pure functions over the text a CI job leaves behind (``ruff --output-format json``,
``eslint -f json``, ``tsc``) and over check-run annotations, the fallback when no artifact exists.
Every lint finding has ``category`` = the tool and ``name`` = the rule.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path, PurePosixPath

from codehealth.findings import Finding

ANNOTATIONS_PER_STEP = 10
FORMAT_RULE = "unformatted"  # the code ruff's formatter gives a file it would change
_TSC_LINE = re.compile(
    r"^(?P<path>[^\s(:][^(:]*?)(?:\((?P<line>\d+),(?P<col>\d+)\)|:(?P<line2>\d+):(?P<col2>\d+))\s*[:-]\s*"
    r"(?P<level>error|warning)\s+(?P<code>TS\d+):\s*(?P<message>.*)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _relative(path: str, root: str | Path | None) -> str:
    path = path.replace("\\", "/")
    if root:
        base = str(Path(root).resolve()).replace("\\", "/").rstrip("/") + "/"
        if path.startswith(base):
            return path[len(base) :]
    for prefix in ("/home/runner/work/", "/github/workspace/"):
        if path.startswith(prefix):  # a GitHub runner's checkout: .../work/<repo>/<repo>/<path>
            rest = path[len(prefix) :].split("/")
            return "/".join(rest[2:] if prefix.startswith("/home") else rest)
    return str(PurePosixPath(path)).lstrip("./") if path.startswith("./") else path


def parse_ruff_json(text: str, *, root: str | Path | None = None) -> list[Finding]:
    """Findings from ``ruff check --output-format json``; ``fixable`` only for ruff's safe fixes."""
    findings = []
    for item in json.loads(text or "[]"):
        fix = item.get("fix") or {}
        code = item.get("code") or "syntax-error"
        findings.append(
            Finding(
                kind="lint",
                category="ruff",
                path=_relative(item.get("filename", ""), root),
                line=(item.get("location") or {}).get("row"),
                name=code,
                confidence=100,
                reason=item.get("message", ""),
                fixable=fix.get("applicability") == "safe",
                extra={"column": (item.get("location") or {}).get("column"), "url": item.get("url")}
                | ({"fix": fix.get("message")} if fix else {})
                # The safe fix's edits travel with the finding: an auto-PR applies exactly these.
                | (
                    {"edits": fix["edits"]} if fix.get("applicability") == "safe" and fix.get("edits") else {}
                ),
            )
        )
    return findings


def parse_eslint_json(text: str, *, root: str | Path | None = None) -> list[Finding]:
    """Findings from ``eslint -f json``; an autofix eslint offers counts as fixable."""
    findings = []
    for result in json.loads(text or "[]"):
        path = _relative(result.get("filePath", ""), root)
        for message in result.get("messages", []):
            findings.append(
                Finding(
                    kind="lint",
                    category="eslint",
                    path=path,
                    line=message.get("line"),
                    name=message.get("ruleId") or "parse-error",
                    confidence=100,
                    reason=message.get("message", ""),
                    fixable="fix" in message,
                    extra={
                        "column": message.get("column"),
                        "severity": "error" if message.get("severity") == 2 else "warning",
                    },
                )
            )
    return findings


def parse_tsc(text: str, *, root: str | Path | None = None) -> list[Finding]:
    """Findings from ``tsc --noEmit`` output, plain (``a.ts(3,5): error TS…``) or pretty (``a.ts:3:5 - …``)."""
    findings = []
    for raw in (text or "").splitlines():
        match = _TSC_LINE.match(_ANSI.sub("", raw).strip())
        if not match:
            continue
        findings.append(
            Finding(
                kind="lint",
                category="tsc",
                path=_relative(match["path"].strip(), root),
                line=int(match["line"] or match["line2"]),
                name=match["code"],
                confidence=100,
                reason=match["message"].strip(),
                extra={"column": int(match["col"] or match["col2"]), "severity": match["level"]},
            )
        )
    return findings


def parse_annotations(annotations: list[dict], *, tool: str = "ci") -> list[Finding]:
    """Check-run annotations (GitHub's wire format), at most ``ANNOTATIONS_PER_STEP``: GitHub itself
    keeps only the first ten per step, so more would be an illusion of completeness."""
    findings = []
    for item in annotations[:ANNOTATIONS_PER_STEP]:
        findings.append(
            Finding(
                kind="lint",
                category=tool,
                path=item.get("path", ""),
                line=item.get("start_line"),
                name=item.get("title") or item.get("annotation_level", "annotation"),
                confidence=80,
                reason=item.get("message", ""),
                extra={"level": item.get("annotation_level")},
            )
        )
    return findings


def ruff_binary() -> str | None:
    """The ruff next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


def _ruff_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RUFF_")}


def formatter_configured(root: Path) -> bool:
    """Whether the checkout formats with ruff (a ``[tool.ruff.format]`` or a ruff.toml ``[format]``
    table): only then is "reformat" one of its own checks, and a fix it would accept."""
    for name, table in (
        ("pyproject.toml", "[tool.ruff.format]"),
        ("ruff.toml", "[format]"),
        (".ruff.toml", "[format]"),
    ):
        try:
            if table in (root / name).read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def run_ruff_format(root: str | Path, *, timeout: float = 300) -> list[Finding]:
    """One finding per file ruff's formatter would change, in a checkout that uses the formatter, with
    the formatter's own edits (``ruff format --check --output-format json``), so an auto-PR applies
    exactly what ``ruff format`` would. Nothing when the formatter is not the checkout's or cannot run."""
    root, binary = Path(root), ruff_binary()
    if not binary or not formatter_configured(root):
        return []
    try:
        done = subprocess.run(
            [binary, "format", "--check", "--output-format", "json", "--no-cache", "."],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_ruff_env(),
            check=False,
        )
        found = parse_ruff_json(done.stdout, root=root) if done.returncode in (0, 1) else []
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return []
    return [
        replace(f, reason="ruff format, with the repository's settings, would reformat this file")
        for f in found
        if f.name == FORMAT_RULE
    ]


def run_ruff(root: str | Path, *, timeout: float = 300) -> list[Finding] | None:
    """Run ruff on the checkout with its own configuration; None when ruff could not run."""
    binary = ruff_binary()
    if not binary:
        return None
    env = _ruff_env()
    try:
        done = subprocess.run(
            [binary, "check", "--output-format", "json", "--exit-zero", "--no-cache", "."],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return parse_ruff_json(done.stdout, root=root)
    except json.JSONDecodeError:
        return None
