"""Stack traces (Python, Node, Java, Go): exception type and frames, for grouping.

A trace is grouped by its exception type and its in-app frames (module + function, never line
numbers), so the same bug with another message or after an edit above it stays one fingerprint,
while the same exception raised from another place in the code is another one.
"""

import re
from dataclasses import dataclass

from logscrawler.masking import mask_tokens
from logscrawler.parser import go_call

_PY_START = re.compile(r"^[ \t]*+Traceback \(most recent call last\):", re.MULTILINE)
_PY_FRAME = re.compile(r'^[ \t]*+File "([^"\n]++)", line \d++, in (\S++)', re.MULTILINE)
_PY_NOT_EXCEPTION = ("Traceback", "During handling", "The above exception", "DETAIL:", "HINT:", "CONTEXT:")
_PY_EXC = re.compile(r"^([A-Za-z_][\w.]*+)(?::\s?(.*))?$")
_NODE_FRAME = re.compile(
    r"^[ \t]++at (?:(?:async )?(\S+?)(?: \[as \w++\])? \()?(.+?)(?::\d++){1,2}\)?$", re.MULTILINE
)
_JAVA_FRAME = re.compile(r"^[ \t]++at ([\w$.<>/]+)\.([\w$<>\-]++)\([^)\n]*+\)$", re.MULTILINE)
_GO_PANIC = re.compile(r"^panic: (.*)$", re.MULTILINE)
_GO_FILE_LINE = re.compile(r"^\s++(\S+?):\d++")
_THREAD_PREFIX = re.compile(r'^Exception in thread "[^"]*" ')
_EXC_LINE = re.compile(
    r"^(?:Caused by: |Uncaught )?([A-Za-z_$][\w$.]*(?:Error|Exception|Throwable|Panic|Fault)?)(?::\s?(.*))?$"
)

# Frames from libraries and runtimes are not the app's; the app's frames say where the bug is.
_LIBRARY_PATHS = (
    "site-packages",
    "dist-packages",
    "/lib/python",
    "<frozen",
    "node_modules",
    "node:",
    "internal/",
    "/usr/local/go/",
    "/go/pkg/mod/",
    "<anonymous>",
)
_LIBRARY_PACKAGES = (
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "org.springframework.",
    "org.apache.",
    "io.netty.",
    "reactor.",
    "runtime.",
    "net/http.",
)
MAX_FRAMES = 5


@dataclass(frozen=True, slots=True)
class Frame:
    module: str
    function: str
    in_app: bool


@dataclass(frozen=True, slots=True)
class Trace:
    exception_type: str
    message: str
    frames: tuple[Frame, ...]
    causes: tuple[tuple[str, str], ...] = ()  # (type, message) of the other exceptions of the chain

    def key(self) -> str:
        """What groups traces (docs/logs.md): the type and message template of every exception of the
        chain, and the innermost in-app frames (all frames if none)."""
        frames = [f for f in self.frames if f.in_app] or list(self.frames)
        where = " ".join(f"{f.module}:{f.function}" for f in frames[-MAX_FRAMES:])
        chain = " <- ".join(
            f"{kind}: {message_template(message)}" if message else kind
            for kind, message in ((self.exception_type, self.message), *self.causes)
        )
        return f"{chain} @ {where}" if where else chain


def message_template(message: str) -> str:
    """An exception message with its values masked: the same raise site with other ids is one template."""
    return " ".join(mask_tokens(message[:500]))


# Build artefacts: a numbered chunk (".next/server/chunks/412.js"), a hashed bundle ("main.3f9a1c2b.js")
_ARTEFACT = re.compile(r"(?<=/)\d++(?=\.[cm]?js$)|(?<=[.\-_])[0-9a-f]{8,20}+(?=\.[cm]?js$)")


def _module_of_path(path: str) -> str:
    path = re.sub(r"^.*?/(site-packages|dist-packages|node_modules|src|app)/", "", path)
    path = _ARTEFACT.sub("<*>", path)
    return re.sub(r"\.(py|js|mjs|cjs|ts|go)$", "", path.lstrip("/"))


def _library_path(path: str) -> bool:
    return any(part in path for part in _LIBRARY_PATHS)


def parse_trace(text: str) -> Trace | None:
    """The trace in ``text`` (several lines), or None when there is none."""
    if "\n" not in text:
        return None
    return _python(text) or _java(text) or _node(text) or _go(text)


def _python(text: str) -> Trace | None:
    if not _PY_START.search(text):
        return None
    frames = tuple(
        Frame(_module_of_path(path), function, not _library_path(path))
        for path, function in _PY_FRAME.findall(text)
    )
    # the exception lines: each unindented line right after a frame (chained traces: the last one raised
    # is the headline, the earlier ones its causes)
    found: list[tuple[str, str]] = []
    lines = text.strip().splitlines()
    for before, line in zip(lines, lines[1:], strict=False):
        if line and not line[0].isspace() and before[:1].isspace() and not line.startswith(_PY_NOT_EXCEPTION):
            match = _PY_EXC.match(line.strip())
            if match:
                found.append((match.group(1), match.group(2) or ""))
    if not found:
        return Trace("Exception", "", frames)
    (kind, message), causes = found[-1], tuple(reversed(found[:-1]))
    return Trace(kind, message, frames, causes)


def _exception_line(text: str) -> tuple[str, str] | None:
    """The first exception line; Java's 'Exception in thread "main" ' prefix dropped."""
    for line in text.splitlines():
        match = _EXC_LINE.match(_THREAD_PREFIX.sub("", line.strip()))
        if match and not line[:1].isspace():
            return match.group(1), match.group(2) or ""
    return None


def _java(text: str) -> Trace | None:
    found = _JAVA_FRAME.findall(text)
    if not found or "(" not in text.split("\n", 1)[1]:
        return None
    head = _exception_line(text)
    if head is None:
        return None
    frames = tuple(Frame(cls, method, not cls.startswith(_LIBRARY_PACKAGES)) for cls, method in found)
    # innermost first in Java: keep the order consistent with Python (outermost first)
    return Trace(head[0], head[1], tuple(reversed(frames)), _causes(text))


def _causes(text: str) -> tuple[tuple[str, str], ...]:
    """The chained exceptions: Java's and Node's "Caused by:", Node's "[cause]:" (not Suppressed:)."""
    out = []
    for line in text.splitlines()[1:]:
        stripped = line.strip()
        for prefix in ("Caused by: ", "[cause]: "):
            if stripped.startswith(prefix):
                match = _EXC_LINE.match(stripped.removeprefix(prefix))
                if match:
                    out.append((match.group(1), match.group(2) or ""))
    return tuple(out)


def _node(text: str) -> Trace | None:
    found = _NODE_FRAME.findall(text)
    if not found:
        return None
    head = _exception_line(text)
    if head is None:
        return None
    frames = tuple(
        Frame(_module_of_path(path), function or "<anonymous>", not _library_path(path))
        for function, path in found
    )
    return Trace(head[0], head[1], tuple(reversed(frames)), _causes(text))


def _go_frames(text: str) -> list[tuple[str, str, str]]:
    """(package, function, file) of each call line followed by its indented ``file:line`` line.

    ``net/http.(*conn).serve(0xc000)``: the arguments are the last parenthesised part, the function
    the part after the last dot before them. Read line by line, so a long line is read once.
    """
    lines = text.split("\n")
    frames = []
    for call, below in zip(lines, lines[1:], strict=False):
        location = _GO_FILE_LINE.match(below) if call.endswith(")") else None
        if location is None or not go_call(call):
            continue
        name = call[: call.rindex("(")]
        package, dot, function = name.rpartition(".")
        if dot and package and function:
            frames.append((package, function, location.group(1)))
    return frames


def _go(text: str) -> Trace | None:
    panic = _GO_PANIC.search(text)
    if not panic:
        return None
    frames = tuple(
        Frame(package, function, not (package.startswith(_LIBRARY_PACKAGES) or _library_path(path)))
        for package, function, path in _go_frames(text)
    )
    # Go panics carry no type: the masked panic message stands in for one ("index out of range [<*>]")
    kind = " ".join(mask_tokens(panic.group(1)))
    return Trace(f"panic: {kind}", panic.group(1), tuple(reversed(frames)))
