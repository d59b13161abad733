"""Stale-code detection: a whole-program reference analysis of a checkout with ``ast``.

A definition is stale when nothing in the project names it: no load or attribute in any Python file,
no identifier in any string literal, template or frontend file. Framework entry points (Django hooks,
registrations, migrations, management commands, test functions and fixtures) are never flagged.
Each finding carries a confidence; ``scan_path`` reports those at or above ``MIN_CONFIDENCE``.
"""

import ast
import re
from pathlib import Path

from codehealth.findings import CONFIDENT, SKIPPED, UNCERTAIN, Finding
from codehealth.stale_refs import Definition, Index, build_index
from codehealth.stale_rules import (
    CONVENTIONAL_MODULES,
    HOOK_PREFIXES,
    HOOKS,
    HTTP_DECORATORS,
    REGISTERING_DECORATORS,
    SIDE_EFFECT_MODULES,
)

MIN_CONFIDENCE = 60


def _decorated_by(definition: Definition, prefixes: tuple[str, ...]) -> bool:
    for decorator in definition.decorators:
        base = decorator.rsplit(".", 1)[-1]
        if any(
            decorator == p or decorator.startswith(p) or base == p or base.startswith(p) for p in prefixes
        ):
            return True
    return False


def _is_test_path(path: str) -> bool:
    parts = path.split("/")
    return (
        any(p in ("tests", "test", "testing") for p in parts[:-1])
        or parts[-1].startswith("test_")
        or parts[-1].endswith("_test.py")
        or parts[-1] in ("conftest.py", "tests.py", "test.py")
    )


def _top_level_names(module) -> set[str]:
    names = set()
    for node in module.tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _loaded_by_convention(module) -> bool:
    """A module Django loads by where it is, when it is what that place expects: a management command
    defines ``Command``, a template tag library ``register``; a helper dropped beside them is not."""
    parts = module.path.split("/")
    if "migrations" in parts:
        return True
    if "management" in parts and "commands" in parts:
        return parts[-1] == "__init__.py" or "Command" in _top_level_names(module)
    if "templatetags" in parts:
        return parts[-1] == "__init__.py" or "register" in _top_level_names(module)
    return False


def _tool_names(index: Index) -> list[Definition]:
    return [d for d in index.definitions if d.category == "function" and _decorated_by(d, ("tool",))]


def _unused_imports(index: Index) -> list[Finding]:
    findings = []
    for d in index.definitions:
        if d.category != "import":
            continue
        module = _module_by_path(index, d.path)
        if (
            d.name in module.loads
            or d.name in module.all_names
            or (module.name, d.name) in index.from_imported
        ):
            continue
        if d.name == "_" or d.name.startswith("__") or d.line in module.noqa_lines:
            continue
        if d.imported_from.rsplit(".", 1)[-1] in SIDE_EFFECT_MODULES:
            continue  # imported to connect receivers or register checks
        if d.path.endswith("conftest.py"):
            continue  # fixtures imported into a conftest are used by name in test arguments
        if d.path.endswith("__init__.py"):
            confidence, reason = 40, "imported in a package __init__ and not used there; may be a re-export"
        elif d.name in index.text_words and d.name in _module_strings(index, module):
            continue
        else:
            confidence, reason = 95, f"'{d.imported_from}' is imported but never used in this module"
        findings.append(
            Finding(
                kind="stale",
                category="import",
                path=d.path,
                line=d.line,
                name=d.name,
                confidence=confidence,
                reason=reason,
                fixable=confidence >= 90,
            )
        )
    return findings


def _module_strings(index: Index, module) -> set[str]:
    return {w for s in module.strings for w in re.findall(r"[A-Za-z_]\w*", s)}


def _module_by_path(index: Index, path: str):
    return index.by_path[path]


def _imports_by_module(index: Index) -> dict[str, dict[str, str]]:
    """Per module path: each imported name and the dotted source it comes from."""
    imports: dict[str, dict[str, str]] = {}
    for d in index.definitions:
        if d.category == "import":
            imports.setdefault(d.path, {})[d.name] = d.imported_from
    return imports


def _registered(d: Definition, imports: dict[str, str]) -> bool:
    """Under a decorator that registers what it decorates, by its own name or an alias of it
    (``from django.dispatch import receiver as on_signal``)."""
    if _decorated_by(d, REGISTERING_DECORATORS):
        return True
    for decorator in d.decorators:
        head, _, rest = decorator.split("(")[0].partition(".")
        source = imports.get(head)
        if source:
            resolved = ".".join(p for p in (source, rest) if p)
            if _decorated_by(Definition("", "", "", 0, "", decorators=(resolved,)), REGISTERING_DECORATORS):
                return True
    return False


def _doubt(index: Index, d: Definition, imports: dict[str, str]) -> str:
    """Why an unreferenced definition may still be alive ("" when nothing says so): a finding is
    confident only when its name appears nowhere at all and nothing may reach it without naming it."""
    name = d.name
    for decorator in d.decorators:
        head = decorator.split("(")[0].split(".")[0]
        where = f", imported from {imports[head]}" if head in imports else ""
        return f"its decorator @{decorator.split('(')[0]}{where} may register it"
    if index.maybe_computed(name):
        return "a name built at run time (a literal prefix or f-string) may be this one"
    if d.bases and d.category == "method":
        return "its class has a base class, which might call it by name"
    if d.bases and d.category == "class":
        return "its base class may find its subclasses without naming them"
    return ""


def _definition_finding(
    index: Index, d: Definition, tools: set[int], imports: dict[str, dict[str, str]]
) -> Finding | None:
    name = d.name
    if name.startswith("__") and name.endswith("__"):
        return None
    if index.referenced(name):
        return None
    if id(d) in tools or "migrations" in d.path.split("/"):
        return None
    if name == "Command" and "commands" in d.path.split("/"):
        return None  # a management command, run by its module's name
    test_path = _is_test_path(d.path)
    if test_path and (
        name.startswith(("test", "Test", "pytest_"))
        or d.category == "method"
        or "Test" in name
        or any("Test" in b for b in d.bases)
    ):
        return None  # collected by the test runner
    module_imports = imports.get(d.path, {})
    if _registered(d, module_imports):
        return None
    doubt = _doubt(index, d, module_imports)
    if d.category == "method":
        if name in HOOKS or name.startswith(HOOK_PREFIXES) or _decorated_by(d, ("override",)):
            return None
        reason = f"method '{d.owner}.{name}' is never called or named anywhere in the project"
        return Finding(
            kind="stale",
            category="method",
            path=d.path,
            line=d.line,
            name=f"{d.owner}.{name}",
            confidence=UNCERTAIN if doubt else CONFIDENT,
            reason=f"{reason} (uncertain: {doubt})" if doubt else reason,
        )
    if d.category == "function" and any(
        dec.split("(")[0].rsplit(".", 1)[-1] in HTTP_DECORATORS for dec in d.decorators
    ):
        return None  # an API operation registered on a router
    # Django finds an app's config in apps.py by its base class; any other class there is ordinary
    if d.category == "class" and any(b.endswith(("AppConfig", "Config")) for b in d.bases):
        return None  # Django finds an app's config class by itself
    if d.category == "class" and d.module.endswith("models") and name[:1].isupper():
        # a model is alive through migrations and the ORM even when nothing names it
        return None
    category = d.category
    if d.path.rsplit("/", 1)[-1] in ("views.py",) or "/views/" in d.path:
        category = "view"
    where = "function" if d.category == "function" else "class"
    reason = f"{where} '{name}' is defined but never called, imported or named anywhere in the project"
    if category == "view":
        reason = f"view '{name}' is not routed by any URLconf nor referenced anywhere"
    if test_path:
        doubt = doubt or "a test helper, which a test runner may collect"
    return Finding(
        kind="stale",
        category=category,
        path=d.path,
        line=d.line,
        name=name,
        confidence=UNCERTAIN if doubt else (CONFIDENT if not name.startswith("_") else 95),
        reason=f"{reason} (uncertain: {doubt})" if doubt else reason,
    )


def _unused_variables(index: Index) -> list[Finding]:
    return [
        Finding(
            kind="stale",
            category="variable",
            path=d.path,
            line=d.line,
            name=d.name,
            confidence=CONFIDENT,
            reason=f"local variable '{d.name}' in '{d.owner}' is assigned but never read",
        )
        for d in index.definitions
        if d.category == "variable"
    ]


_PATH_CALL = re.compile(r"""\b(?:re_)?path\(\s*[rR]?["']([^"']*)["']\s*,(.*?)\)\s*,?\s*$""", re.M | re.S)
_ROUTE_NAME = re.compile(r"""name\s*=\s*["']([\w\-.:]+)["']""")


def _routes(index: Index) -> list[Finding]:
    """Named URL routes whose name is never reversed, redirected to or used by a ``{% url %}`` tag."""
    import ast

    used_names: set[str] = set()
    for text in index.text_blobs.values():
        used_names.update(re.findall(r"""\{%\s*url\s+["']([\w\-.:]+)["']""", text))
    for s in index.strings:
        used_names.add(s.split(":")[-1])
    findings = []
    for module in index.modules.values():
        if not module.path.endswith("urls.py"):
            continue
        route_literals: set[str] = set()
        for node in ast.walk(module.tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("path", "re_path", "url")
            ):
                continue
            route = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            name_kw = next(
                (
                    k.value.value
                    for k in node.keywords
                    if k.arg == "name" and isinstance(k.value, ast.Constant)
                ),
                None,
            )
            if not name_kw or not isinstance(name_kw, str):
                continue
            route_literals.add(name_kw)
            if _name_used_elsewhere(index, name_kw, module.path) or name_kw in _template_url_names(index):
                continue
            if route and _literal_path_used(index, str(route)):
                continue
            findings.append(
                Finding(
                    kind="stale",
                    category="route",
                    path=module.path,
                    line=node.lineno,
                    name=name_kw,
                    confidence=70,
                    reason=f"URL route '{name_kw}' ({route!r}) is never reversed, redirected to or linked by "
                    "{% url %} in code or templates",
                )
            )
    return findings


def _template_url_names(index: Index) -> set[str]:
    names = set()
    for text in index.text_blobs.values():
        for match in re.findall(r"""\{%\s*url\s+["']([\w\-.:]+)["']""", text):
            names.add(match.split(":")[-1])
    return names


def _name_used_elsewhere(index: Index, route_name: str, urls_path: str) -> bool:
    """The name as a string literal in any Python file other than the URLconf that defines it."""
    for module in index.modules.values():
        if module.path == urls_path:
            continue
        if route_name in module.strings or any(s.endswith(":" + route_name) for s in module.strings):
            return True
    return False


def _literal_path_used(index: Index, route: str) -> bool:
    literal = route.strip("^$").split("<")[0].split("(")[0].strip("/")
    if len(literal) < 3:
        return False
    for path, text in index.text_blobs.items():
        if f"/{literal}" in text and not path.endswith((".md", ".rst")):
            return True
    return False


_TEMPLATE_REF = re.compile(r"""["']([\w\-./]+\.(?:html|txt|xml|j2|jinja|svg))["']""")


def _templates(index: Index) -> list[Finding]:
    """Templates that no view, include, extends or string literal names."""
    referenced: set[str] = set()
    for s in index.strings:
        for part in re.split(r"[#\s]", s):
            if part.endswith((".html", ".txt", ".xml", ".j2", ".jinja", ".svg")):
                referenced.add(part)
    for text in index.text_blobs.values():
        referenced.update(_TEMPLATE_REF.findall(text))
    prefixes = {
        s
        for s in index.strings
        if "/" in s.rstrip("/")
        and len(s) >= 4
        and " " not in s
        and not s.startswith("/")
        and not s.endswith((".html", ".txt", ".xml"))
    }
    model_templates = {
        re.sub(r"(?<!^)(?=[A-Z])", "_", d.name).lower()
        for d in index.definitions
        if d.category == "class" and d.bases
    }
    findings = []
    for path in index.text_blobs:
        parts = path.split("/")
        if "templates" not in parts or not path.endswith((".html", ".txt", ".xml")):
            continue
        name = "/".join(parts[parts.index("templates") + 1 :])
        if name in referenced or any(r.endswith("/" + name) for r in referenced):
            continue
        base = parts[-1]
        if base in (
            "404.html",
            "500.html",
            "403.html",
            "400.html",
            "403_csrf.html",
            "base.html",
            "base_site.html",
        ):
            continue
        if parts[parts.index("templates") + 1] in (
            "admin",
            "registration",
            "django",
            "account",
            "socialaccount",
            "rest_framework",
            "debug_toolbar",
            "ninja",
        ):
            continue  # overrides of templates a framework renders by its own name
        # the default name of a generic class-based view is rendered without being named, and a name
        # built from a literal prefix (f"app/elements/{name}.html", prefix + "_message.txt") may be this one
        prefixed = any(name.startswith(prefix) for prefix in prefixes)
        generic = re.search(r"_(list|detail|form|confirm_delete|archive\w*)\.html$", base)
        by_model = base.rsplit(".", 1)[0] in model_templates  # Wagtail renders app/<model_snake>.html
        computed = index.maybe_computed(name, path=path)
        confidence = 40 if generic or prefixed or by_model else (UNCERTAIN if computed else 75)
        reason = f"template '{name}' is never rendered, included or extended"
        if computed:
            reason += " by its full name (uncertain: a name built at run time may be this one)"
        findings.append(
            Finding(
                kind="stale",
                category="template",
                path=path,
                line=None,
                name=name,
                confidence=confidence,
                reason=reason,
            )
        )
    return findings


def _files(index: Index) -> list[Finding]:
    """Python modules that nothing imports and nothing names in a string (dotted path, app label)."""
    imported: set[str] = set()
    for module in index.modules.values():
        for target in module.imports:
            parts = target.split(".")
            imported.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    dotted_strings = {s for s in index.strings if "." in s or "/" in s}
    findings = []
    for module in index.modules.values():
        stem = module.path.rsplit("/", 1)[-1][:-3]
        if module.name in imported or module.is_script or stem in CONVENTIONAL_MODULES:
            continue
        if _is_test_path(module.path) or _loaded_by_convention(module) or module.path.count("/") == 0:
            continue
        if any(module.name in s or s.startswith(module.name) for s in dotted_strings) or (
            stem in index.text_words and any(stem in s for s in index.strings)
        ):
            continue
        if any(f"{module.name}:" in text or module.path in text for text in index.text_blobs.values()):
            continue  # an entry point in pyproject.toml, a Procfile, a Makefile
        findings.append(
            Finding(
                kind="stale",
                category="file",
                path=module.path,
                line=None,
                name=module.name,
                confidence=65,
                reason=f"module '{module.name}' is imported by nothing and named "
                "by no setting, string or config file",
            )
        )
    return findings


def stale_tools(index: Index, called: set[str] | None) -> list[Finding]:
    """Functions registered with ``@tool``; with ``called`` (names seen in tool executions for N days)
    every tool outside it is stale, without it only tools nothing else in the project names."""
    findings = []
    for d in _tool_names(index):
        if called is not None:
            if d.name in called:
                continue
            confidence, reason = 85, f"tool '{d.name}' is registered but was never called in the period"
        else:
            if index.referenced(d.name):
                continue
            confidence = 60
            reason = (
                f"tool '{d.name}' is registered but nothing in the project names it; "
                "its execution history was not consulted"
            )
        findings.append(
            Finding(
                kind="stale",
                category="tool",
                path=d.path,
                line=d.line,
                name=d.name,
                confidence=confidence,
                reason=reason,
            )
        )
    return findings


def find_stale(
    root: Path | str,
    *,
    called_tools: set[str] | None = None,
    min_confidence: int = MIN_CONFIDENCE,
    index: Index | None = None,
) -> list[Finding]:
    """Every stale item of the checkout at ``root`` with at least ``min_confidence``.

    ``called_tools``: names of tools executed in the period under review (from ``tool_executions``);
    None when that history is not available.
    """
    index = index or build_index(Path(root))
    tools = {id(d) for d in _tool_names(index)}
    imports = _imports_by_module(index)
    findings = _unused_imports(index) + _unused_variables(index)
    for d in index.definitions:
        if d.category in ("function", "class", "method"):
            finding = _definition_finding(index, d, tools, imports)
            if finding:
                findings.append(finding)
    findings += _routes(index) + _templates(index) + _files(index) + stale_tools(index, called_tools)
    findings = [f for f in findings if f.confidence >= min_confidence] + skipped_findings(index)
    return sorted(findings, key=lambda f: (f.path, f.line or 0, f.category, f.name))


def skipped_findings(index: Index) -> list[Finding]:
    """A note per file the analysis had to skip (a 20,000-term expression is more than Python's parser
    nests): the scan goes on without it, and says so. Such notes count in no score."""
    return [
        Finding(
            kind="lint",
            category=SKIPPED,
            path=path,
            line=None,
            name="not_analysed",
            confidence=100,
            reason=f"this file was skipped: {why}",
        )
        for path, why in sorted(index.skipped.items())
    ]
