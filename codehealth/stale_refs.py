"""The project index of stale detection: every definition and every reference, from ``ast`` and text.

References are deliberately generous: any identifier inside a string literal, a template or a frontend
file counts, which is how Django's string references (settings, ``INSTALLED_APPS``, URLconfs, signals,
``getattr`` with a literal, ``__all__``) keep code alive without special cases for each.
"""

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".tox",
    "build",
    "dist",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "site-packages",
    ".next",
    "fixtures",
}
TEXT_SUFFIXES = {
    ".html",
    ".txt",
    ".js",
    ".ts",
    ".tsx",
    ".jsx",
    ".md",
    ".cfg",
    ".toml",
    ".ini",
    ".yml",
    ".yaml",
    ".json",
    ".xml",
    ".rst",
    ".j2",
    ".jinja",
}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_COMPUTED = 2000
_PLACEHOLDER = re.compile(r"%(?:\([A-Za-z_]\w*\))?[sdr]|\{[A-Za-z_0-9]*(?:![rs])?\}")


def computed_pattern(parts: list[str | None]) -> str | None:
    """The regex of a name built from literal ``parts`` and run-time values (``None``), when its
    literal part says enough (three characters or more) to tell which names it may produce."""
    literal = "".join(p for p in parts if p)
    if len(literal.strip("/._- ")) < 3 or len(literal) > 300:
        return None
    pattern = "".join(re.escape(p) if p is not None else ".+" for p in parts)
    return re.sub(r"(?:\.\+)+", ".+", pattern)


def _placeholder_parts(text: str) -> list[str | None]:
    parts: list[str | None] = []
    for i, piece in enumerate(_PLACEHOLDER.split(text)):
        if i:
            parts.append(None)
        parts.append(piece)
    return parts


@dataclass
class Definition:
    category: str  # function, class, method, import, variable
    name: str
    path: str
    line: int
    module: str
    decorators: tuple[str, ...] = ()
    bases: tuple[str, ...] = ()  # for classes; for methods: the bases of the owning class
    owner: str = ""  # owning class for methods
    imported_from: str = ""  # for imports: the dotted source


@dataclass
class Module:
    path: str  # relative, forward slashes
    name: str  # dotted
    tree: ast.Module
    imports: set[str] = field(default_factory=set)  # dotted modules this one imports (resolved)
    loads: set[str] = field(default_factory=set)  # names and attributes read in this module
    all_names: set[str] = field(default_factory=set)
    strings: set[str] = field(default_factory=set)  # string literals of this module
    is_script: bool = False
    noqa_lines: set[int] = field(default_factory=set)  # lines that silence the unused-import rule


@dataclass
class Index:
    root: Path
    modules: dict[str, Module] = field(default_factory=dict)  # by dotted name
    definitions: list[Definition] = field(default_factory=list)
    name_counts: dict[str, int] = field(default_factory=dict)  # loads + attributes over all python
    text_words: set[str] = field(default_factory=set)  # identifiers in strings, templates, other files
    strings: set[str] = field(default_factory=set)  # whole string literals of python files
    text_blobs: dict[str, str] = field(default_factory=dict)  # non-python text files by relative path
    from_imported: set[tuple[str, str]] = field(default_factory=set)  # (module, name) pulled by others
    # names built at run time (f"emails/{name}.html", "load_" + key, "%s-body.html" % kind), as regexes:
    # what one of them may produce is maybe alive, never confidently dead
    computed: set[str] = field(default_factory=set)
    lines: int = 0

    by_path: dict[str, Module] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # files not analysed, and why

    def referenced(self, name: str) -> bool:
        return self.name_counts.get(name, 0) > 0 or name in self.text_words

    def maybe_computed(self, name: str, *, path: str = "") -> bool:
        """Whether a name built at run time may be ``name`` (or end ``path``, for a template)."""
        if self._computed is None:
            patterns = sorted(self.computed)[:MAX_COMPUTED]
            self._computed = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else False
        if not self._computed:
            return False
        if self._computed.fullmatch(name):
            return True
        parts = path.split("/")
        return any(self._computed.fullmatch("/".join(parts[i:])) for i in range(len(parts) - 1))

    _computed: re.Pattern | bool | None = None


def iter_files(root: Path):
    """Every file of the checkout outside vendored and generated directories. Symlinks are never
    followed to a directory (a loop would never end) and a file symlink only when it resolves inside
    the checkout (``helpers.py -> ../../etc/passwd`` is not the repository's file)."""
    root = Path(root)
    real_root = root.resolve()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                if _inside(entry, real_root) and entry.is_file():
                    yield entry
            elif entry.is_dir():
                if entry.name not in SKIP_DIRS and not entry.name.endswith(".egg-info"):
                    stack.append(entry)
            elif entry.is_file():
                yield entry


def _inside(link: Path, real_root: Path) -> bool:
    try:
        return link.resolve(strict=True).is_relative_to(real_root)
    except (OSError, RuntimeError):  # dangling, or a loop
        return False


def module_name(rel: str, packages: set[str]) -> str:
    """The dotted name ``rel`` is imported by. Leading directories that are not packages (``src/``, an
    unpacked archive's ``name-1.0/``) are dropped when a package starts below them, the way they
    would be on ``sys.path``; ``packages``: the directories holding an ``__init__.py``."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    start = 0
    while (
        start < len(parts) - 1
        and "/".join(parts[: start + 1]) not in packages
        and "/".join(parts[: start + 2]) in packages
    ):
        start += 1
    return ".".join(parts[start:])


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    return ast.unparse(node)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


class _Collector(ast.NodeVisitor):
    """Definitions and loads of one module."""

    def __init__(self, index: Index, module: Module, is_package: bool):
        self.index, self.module, self.is_package = index, module, is_package
        self.class_stack: list[ast.ClassDef] = []
        self.func_depth = 0

    def _define(self, category: str, node, **extra) -> None:
        self.index.definitions.append(
            Definition(
                category=category,
                name=extra.pop("name", getattr(node, "name", "")),
                path=self.module.path,
                line=node.lineno,
                module=self.module.name,
                **extra,
            )
        )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.module.imports.add(alias.name)
            if alias.asname:
                self._define("import", node, name=alias.asname, imported_from=alias.name)
            else:
                self._define("import", node, name=alias.name.split(".")[0], imported_from=alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = _resolve(self.module.name, self.is_package, node.level, node.module)
        if source == "__future__":
            return
        self.module.imports.add(source)
        for alias in node.names:
            if alias.name == "*":
                continue
            self.module.imports.add(f"{source}.{alias.name}")
            self.index.from_imported.add((source, alias.name))
            self._define(
                "import", node, name=alias.asname or alias.name, imported_from=f"{source}.{alias.name}"
            )

    def _visit_function(self, node) -> None:
        decorators = tuple(_decorator_name(d) for d in node.decorator_list)
        for d in node.decorator_list:
            self.visit(d)
        if self.class_stack and self.func_depth == 0:
            owner = self.class_stack[-1]
            self._define(
                "method",
                node,
                decorators=decorators,
                owner=owner.name,
                bases=tuple(ast.unparse(b) for b in owner.bases),
            )
        elif self.func_depth == 0:
            self._define("function", node, decorators=decorators)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        arguments = [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]
        for arg in [*arguments, node.args.vararg, node.args.kwarg]:
            if arg is not None and arg.annotation:
                self.visit(arg.annotation)
        if node.returns:
            self.visit(node.returns)
        self._local_variables(node)
        saved, self.class_stack = self.class_stack, []
        self.func_depth += 1
        for statement in node.body:
            self.visit(statement)
        self.func_depth -= 1
        self.class_stack = saved

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def _local_variables(self, node) -> None:
        """Names bound by a plain assignment in this function and never read in it."""
        stores: dict[str, int] = {}
        loads: set[str] = set()
        uses_locals = False
        for child in ast.walk(node):
            if child is not node and isinstance(child, ast.ClassDef):
                loads.update(n.id for n in ast.walk(child) if isinstance(n, ast.Name))
            if child is not node and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                # names read by nested functions count as reads (closures)
                loads.update(n.id for n in ast.walk(child) if isinstance(n, ast.Name))
            if isinstance(child, ast.Name):
                if isinstance(child.ctx, ast.Load):
                    loads.add(child.id)
            elif isinstance(child, (ast.Global, ast.Nonlocal)):
                loads.update(child.names)
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name)
                and child.func.id in ("locals", "vars")
            ):
                uses_locals = True
            if isinstance(child, (ast.Assign, ast.AnnAssign)):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for target in targets:
                    if isinstance(target, ast.Name):  # tuple unpacking is documentation, not dead code
                        stores.setdefault(target.id, target.lineno)
        if uses_locals:
            return
        for name, line in stores.items():
            if name not in loads and not name.startswith("_"):
                self.index.definitions.append(
                    Definition(
                        category="variable",
                        name=name,
                        path=self.module.path,
                        line=line,
                        module=self.module.name,
                        owner=node.name,
                    )
                )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for b in [*node.bases, *[k.value for k in node.keywords]]:
            self.visit(b)
        if self.func_depth == 0 and not self.class_stack:
            self._define(
                "class",
                node,
                decorators=tuple(_decorator_name(d) for d in node.decorator_list),
                bases=tuple(ast.unparse(b) for b in node.bases),
            )
        self.class_stack.append(node)
        for statement in node.body:
            self.visit(statement)
        self.class_stack.pop()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Load, ast.Del)):
            self.module.loads.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.module.loads.add(node.attr)
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        parts = [v.value if isinstance(v, ast.Constant) else None for v in node.values]
        self._computed([p if isinstance(p, str) or p is None else None for p in parts])
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        left, right = (
            n.value if isinstance(n, ast.Constant) and isinstance(n.value, str) else None
            for n in (node.left, node.right)
        )
        if isinstance(node.op, ast.Add) and (left is None) != (right is None):
            self._computed([left, right])  # "load_" + key, key + "_message.txt"
        self.generic_visit(node)

    def _computed(self, parts: list[str | None]) -> None:
        pattern = computed_pattern(parts)
        if pattern:
            self.index.computed.add(pattern)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _PLACEHOLDER.search(node.value) and len(node.value) <= 300:
            self._computed(_placeholder_parts(node.value))  # "emails/%s-body.html", "{}.txt".format
        if isinstance(node.value, str):
            self.index.strings.add(node.value)
            self.module.strings.add(node.value)
            # channels dispatches a message of type "chat.message" to the method chat_message
            self.index.text_words.update(IDENT.findall(node.value.replace(".", "_")))
            self.index.text_words.update(IDENT.findall(node.value))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if (
                isinstance(target, ast.Name)
                and target.id == "__all__"
                and isinstance(node.value, (ast.List, ast.Tuple))
            ):
                self.module.all_names.update(
                    e.value
                    for e in node.value.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                )
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test):
            self.module.is_script = True
        self.generic_visit(node)


def build_index(root: Path) -> Index:
    """Parse every Python file and read every other text file of the checkout."""
    index = Index(root=root)
    files = list(iter_files(root))
    packages = {f.parent.relative_to(root).as_posix() for f in files if f.name == "__init__.py"}
    for file in files:
        rel = file.relative_to(root).as_posix()
        if file.suffix == ".py":
            try:
                source = file.read_text(encoding="utf-8", errors="replace")
                tree = ast.parse(source, filename=rel)
            except (SyntaxError, ValueError, OSError):
                continue
            except (RecursionError, MemoryError):
                index.skipped[rel] = "nested too deeply for Python's parser"
                continue
            index.lines += source.count("\n") + 1
            module = Module(path=rel, name=module_name(rel, packages), tree=tree)
            module.noqa_lines = {
                n
                for n, line in enumerate(source.splitlines(), 1)
                if re.search(r"#\s*noqa(?!:)|#\s*noqa:[^#]*F401", line)
            }
            known = len(index.definitions)
            try:
                _Collector(index, module, file.name == "__init__.py").visit(tree)
            except RecursionError:
                del index.definitions[known:]  # nothing half-read of this file stays
                index.skipped[rel] = "nested too deeply to analyse"
                continue
            index.modules[module.name] = module
            index.by_path[rel] = module
            for comment in re.findall(r"#\s*type:([^\n#]*)", source):  # PEP 484 type comments
                module.loads.update(IDENT.findall(comment))
            for name in module.loads:
                index.name_counts[name] = index.name_counts.get(name, 0) + 1
            index.text_words.update(module.all_names)
        elif file.suffix in TEXT_SUFFIXES or file.name in ("Procfile", "Makefile"):
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if len(text) > 2_000_000:
                continue
            index.text_blobs[rel] = text
            index.text_words.update(IDENT.findall(text))
    return index
