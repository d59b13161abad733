"""Every outbound HTTP call site of the project's code goes through the outbound guard, or is on the
short list below of clients whose base URL the operator sets (and whose paths the code builds)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["juggernaut", "chat", "selfheal", "logscrawler", "codehealth", "routing"]
# Where sessions are built and guarded: the kernel's two outbound modules.
KERNEL = {"juggernaut/http.py", "juggernaut/urlguard.py"}

# Unguarded sessions, each for an API whose base URL is an operator's setting.
OPERATOR_BASE_URLS = {
    ("routing/clients.py", "OpenRouterClient.__init__"): "OPENROUTER_BASE_URL",
    ("logscrawler/clients.py", "RailwayClient"): "RAILWAY_API_URL",
    ("codehealth/clients.py", "GitHubClient.__init__"): "GITHUB_API_URL",
    ("codehealth/selfheal.py", "github_check"): "GITHUB_API_URL (the self-heal check's GET /rate_limit)",
}
# Ways to reach the network without a session: none is used outside the kernel.
FORBIDDEN_MODULES = {"urllib.request", "http.client", "httpx", "urllib3", "aiohttp"}
RAW_SOCKETS = {"socket", "create_connection", "getaddrinfo"}  # socket.<these>
_ERRORS = ("Exception", "Error", "Timeout")  # requests' exception classes may be named
SESSION_FACTORIES = {"http_session", "HttpSession", "Session", "PoolManager"}


def _sites(path: Path, relative: str) -> tuple[set[tuple[str, str]], list[str]]:
    """(file, enclosing def/class) of every session built or named in ``path``, and every bare use
    of ``requests`` or a forbidden module."""
    tree = ast.parse(path.read_text(), filename=relative)
    sessions: set[tuple[str, str]] = set()
    bare: list[str] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = [*scope, child.name]
            if isinstance(child, ast.Import | ast.ImportFrom):
                names = [child.module or ""] if isinstance(child, ast.ImportFrom) else []
                names += [alias.name for alias in child.names]
                for name in names:
                    if name.endswith(".exceptions"):  # catching a library's errors reaches nothing
                        continue
                    if any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES):
                        bare.append(f"{relative}:{child.lineno} imports {name}")
            elif isinstance(child, ast.Name) and child.id in SESSION_FACTORIES:
                sessions.add((relative, ".".join(scope)))
            elif isinstance(child, ast.Attribute):
                if child.attr in SESSION_FACTORIES:
                    sessions.add((relative, ".".join(scope)))
                owner = child.value.id if isinstance(child.value, ast.Name) else ""
                if owner == "requests" and not (child.attr == "Response" or child.attr.endswith(_ERRORS)):
                    bare.append(f"{relative}:{child.lineno} uses requests.{child.attr}")
                if owner == "socket" and child.attr in RAW_SOCKETS:
                    bare.append(f"{relative}:{child.lineno} uses socket.{child.attr}")
            visit(child, inner)

    visit(tree, [])
    return sessions, bare


def _walk() -> tuple[set[tuple[str, str]], list[str]]:
    sessions: set[tuple[str, str]] = set()
    bare: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in KERNEL or "/migrations/" in relative:
                continue
            found, uses = _sites(path, relative)
            sessions |= found
            bare += uses
    return sessions, bare


def test_it_finds_every_unguarded_session_on_the_operator_list():
    sessions, _ = _walk()
    assert sessions == set(OPERATOR_BASE_URLS), (
        "an unguarded session outside the list: build it with juggernaut.urlguard.guarded_session, "
        "or, if its base URL is an operator's setting, add it to OPERATOR_BASE_URLS with that setting"
    )


def test_it_finds_no_bare_network_call():
    _, bare = _walk()
    assert bare == []


def test_the_walk_sees_a_bare_call(tmp_path):
    """The walk itself: a module that calls ``requests.get`` and builds a session is caught."""
    module = tmp_path / "leak.py"
    module.write_text(
        "import requests\nfrom juggernaut.http import http_session\n\n"
        "def fetch(url):\n    requests.get(url)\n    return http_session().get(url)\n"
    )
    sessions, bare = _sites(module, "leak.py")
    assert sessions == {("leak.py", "fetch")}
    assert bare == ["leak.py:5 uses requests.get"]
