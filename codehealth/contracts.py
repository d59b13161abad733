"""Contract validation: a backend's OpenAPI schema against what a TypeScript frontend sends and reads,
and breaking changes between two versions of a schema.

The frontend is read with light parsing (regular expressions over the source, no TypeScript compiler):
``fetch`` and client calls (``api.get``, ``axios.post``, ``apiFetch<T>``…) with their method, path
(template literals become ``{param}``) and object-literal body, and the interfaces and object type aliases
that the calls' responses are typed with.
"""

import ast
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from codehealth.findings import TYPE_DRIFT, Finding
from codehealth.stale_refs import iter_files
from codehealth.untrusted import json_loads

FRONTEND_SUFFIXES = (".ts", ".tsx", ".js", ".jsx", ".mjs")
SCHEMA_FILES = ("openapi.json", "schema.json", "openapi/openapi.json", "docs/openapi.json")
_CALL = re.compile(
    r"""(?P<callee>\bfetch|\b[\w$]+\.(?P<verb>get|post|put|patch|delete)|\b(?:api|request|client|http)\w*)"""
    r"""\s*(?:<\s*(?P<generic>[\w.\[\]]+)\s*>)?\s*\(\s*(?P<q>[`'"])(?P<path>[^`'"]*?)(?P=q)""",
    re.I,
)
_METHOD = re.compile(r"""method\s*:\s*['"`](\w+)['"`]""", re.I)
_INTERFACE = re.compile(
    r"""(?:export\s+)?(?:interface\s+(\w+)(?:\s+extends\s+[\w,\s]+)?|type\s+(\w+)\s*=)\s*\{"""
)
_FIELD = re.compile(
    r"""(?:^|(?<=[;,]))[ \t]*(?:readonly\s+)?['"]?(\w+)['"]?\s*(\?)?\s*:\s*([^;,\n]+)""", re.M
)
_AS_TYPE = re.compile(r"""\bas\s+(?:Promise<)?([A-Z]\w*)(\[\])?""")
_TYPED = re.compile(r"""(?:const|let|var)\s+\w+\s*:\s*([A-Z]\w*)(\[\])?\s*=""")
_PROMISE = re.compile(r"""\)\s*:\s*Promise<\s*([A-Z]\w*)(\[\])?\s*>""")


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    request: dict  # field -> {"type", "required"}
    response: dict  # field -> {"type", "required"}
    params: dict  # name -> {"in", "required", "type"}
    statuses: set = field(default_factory=set)


@dataclass
class Call:
    path: str  # the frontend file
    line: int
    method: str
    url: str  # normalised: {param} for every interpolation
    body: set | None  # object-literal keys, None when the body is not a literal (or has a spread)
    response_type: str | None


@dataclass
class TsType:
    name: str
    path: str
    line: int
    fields: dict  # name -> (ts type, optional, line)
    # where a field can be added: the line of the closing brace when it stands alone, and the fields'
    # indentation; None for a one-line type
    insert_at: tuple[int, str] | None = None


def load_schema(source: str | Path | dict) -> dict:
    """An OpenAPI document from a dict, a JSON text or a file path."""
    if isinstance(source, dict):
        return source
    text = str(source)
    if not text.lstrip().startswith("{"):
        text = Path(source).read_text(encoding="utf-8")
    return json_loads(text, max_depth=200)  # a checkout's file: no non-finite numbers, bounded nesting


def find_schema_file(root: Path) -> Path | None:
    """An exported schema committed in the checkout, if there is one."""
    for name in SCHEMA_FILES:
        if (root / name).is_file():
            return root / name
    return None


def _deref(schema: dict, node: dict | None, depth: int = 0) -> dict:
    node = node or {}
    while "$ref" in node and depth < 20:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {})
        node, depth = target, depth + 1
    if "allOf" in node and len(node["allOf"]) == 1:
        return _deref(schema, node["allOf"][0], depth + 1)
    return node


def _type_of(schema: dict, node: dict) -> str:
    node = _deref(schema, node)
    if "anyOf" in node or "oneOf" in node:
        kinds = sorted({_type_of(schema, n) for n in node.get("anyOf", node.get("oneOf", []))} - {"null"})
        return "|".join(kinds) or "null"
    kind = node.get("type", "object" if "properties" in node else "any")
    if kind == "array":
        return _type_of(schema, node.get("items", {})) + "[]"
    return kind


def _fields(schema: dict, node: dict | None) -> dict:
    node = _deref(schema, node)
    if node.get("type") == "array":
        node = _deref(schema, node.get("items"))
    required = set(node.get("required", []))
    return {
        name: {
            "type": _type_of(schema, prop),
            "required": name in required,
            "nullable": _nullable(schema, prop),
        }
        for name, prop in (node.get("properties") or {}).items()
    }


def _nullable(schema: dict, node: dict) -> bool:
    node = _deref(schema, node)
    variants = node.get("anyOf", node.get("oneOf", []))
    return bool(node.get("nullable")) or any(_deref(schema, v).get("type") == "null" for v in variants)


def ts_type_of(json_type: str, nullable: bool = False) -> str:
    """The TypeScript spelling of a schema type as ``_type_of`` writes it (``integer[]``, ``a|b``)."""
    if json_type.endswith("[]"):
        inner = ts_type_of(json_type[:-2])
        ts = f"({inner})[]" if " " in inner else f"{inner}[]"
    else:
        names = {
            "string": "string",
            "integer": "number",
            "number": "number",
            "boolean": "boolean",
            "null": "null",
        }
        ts = " | ".join(dict.fromkeys(names.get(part, "unknown") for part in json_type.split("|")))
    return f"{ts} | null" if nullable and ts not in ("null", "unknown") else ts


def operations(schema: dict) -> dict[tuple[str, str], Operation]:
    """Every operation of the schema by (METHOD, path)."""
    result = {}
    for path, item in (schema.get("paths") or {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete", "head", "options"):
                continue
            body = (op.get("requestBody") or {}).get("content") or {}
            body_schema = next(iter(body.values()), {}).get("schema") if body else None
            success = next(
                (r for code, r in sorted((op.get("responses") or {}).items()) if code.startswith("2")), {}
            )
            content = success.get("content") or {}
            response_schema = next(iter(content.values()), {}).get("schema") if content else None
            params = {
                p["name"]: {
                    "in": p.get("in"),
                    "required": bool(p.get("required")),
                    "type": _type_of(schema, p.get("schema", {})),
                }
                for p in (_deref(schema, p) for p in op.get("parameters", []))
            }
            result[(method.upper(), path)] = Operation(
                method=method.upper(),
                path=path,
                operation_id=op.get("operationId", ""),
                request=_fields(schema, body_schema) if body_schema else {},
                response=_fields(schema, response_schema) if response_schema else {},
                params=params,
                statuses=set((op.get("responses") or {}).keys()),
            )
    return result


def _normalise(url: str) -> str:
    url = re.sub(r"\$\{[^}]*\}", "{}", url.split("?")[0].split("#")[0])
    url = re.sub(r"\{[^}]*\}", "{}", url)
    return url.rstrip("/") or "/"


def _object_keys(text: str, start: int) -> set | None:
    """Top-level keys of the object literal beginning at ``text[start] == '{'``; None with a spread."""
    inner = _balanced(text, start)
    previous = None
    while previous != inner:  # blank nested literals, calls and strings so only top-level commas remain
        previous = inner
        inner = re.sub(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)|`[^`]*`|'[^']*'|\"[^\"]*\"", "0", inner)
    keys = set()
    for part in inner.split(","):
        part = part.strip()
        if part.startswith("..."):
            return None
        match = re.match(r"([A-Za-z_$][\w$]*)\s*(?::|$)", part)
        if match:
            keys.add(match.group(1))
    return keys


def _body_keys(window: str) -> set | None:
    match = re.search(r"JSON\.stringify\(\s*\{", window) or re.search(r"\bbody\s*:\s*\{", window)
    if not match:
        return None
    return _object_keys(window, match.end() - 1)


def frontend_calls(root: Path) -> tuple[list[Call], dict[str, TsType]]:
    """The API calls and the object types of a frontend tree."""
    calls, types = [], {}
    for file in iter_files(root):
        if (
            not file.name.endswith(FRONTEND_SUFFIXES)
            or file.name.endswith(".d.ts")
            and "api" not in file.name
        ):
            continue
        rel = file.relative_to(root).as_posix()
        text = file.read_text(encoding="utf-8", errors="replace")
        for match in _INTERFACE.finditer(text):
            name = match.group(1) or match.group(2)
            body = _balanced(text, match.end() - 1)
            base_line = text.count("\n", 0, match.start()) + 1
            fields = {}
            for f in _FIELD.finditer(_top_level(body)):
                fields[f.group(1)] = (
                    f.group(3).strip(),
                    bool(f.group(2)),
                    base_line + body.count("\n", 0, f.start()),
                )
            types[name] = TsType(
                name=name,
                path=rel,
                line=base_line,
                fields=fields,
                insert_at=_insert_at(text, match.end() + len(body)),
            )
        for match in _CALL.finditer(text):
            url = match["path"]
            if "/" not in url or url.startswith(("./", "../")) or re.search(r"\.(css|svg|png|js|json)$", url):
                continue
            window = text[match.end() : match.end() + 600]
            close = _call_end(text, match.start("path") - 2)
            window = text[match.end() : close] if close else window
            method = (match["verb"] or "").upper()
            if not method:
                m = _METHOD.search(window)
                method = m.group(1).upper() if m else "GET"
            body = _body_keys(window)
            if body is None and match["verb"] in ("post", "put", "patch"):
                second = re.match(r"\s*,\s*\{", window)
                body = _object_keys(window, second.end() - 1) if second else None
            after = text[close or match.end() : (close or match.end()) + 300]
            before = text[max(0, match.start() - 200) : match.start()]
            response_type = match["generic"]
            for pattern, where in ((_AS_TYPE, after), (_TYPED, before), (_PROMISE, before)):
                if response_type:
                    break
                found = list(pattern.finditer(where))
                if found:
                    response_type = (found[0] if where is after else found[-1]).group(1)
            calls.append(
                Call(
                    path=rel,
                    line=text.count("\n", 0, match.start()) + 1,
                    method=method,
                    url=_normalise(url),
                    body=body,
                    response_type=(response_type or "").rstrip("[]") or None,
                )
            )
    return calls, types


def _insert_at(text: str, close: int) -> tuple[int, str] | None:
    """For the type whose closing brace is at ``close``: that line and the indentation of the line
    above it (the last field's), when the brace stands alone on its line."""
    line_start = text.rfind("\n", 0, close) + 1
    line_end = text.find("\n", close)
    if text[line_start : line_end if line_end >= 0 else None].strip() not in ("}", "};") or line_start == 0:
        return None
    above = text[text.rfind("\n", 0, line_start - 1) + 1 : line_start - 1]
    indent = above[: len(above) - len(above.lstrip())] or text[line_start:close] + "  "
    return text.count("\n", 0, close) + 1, indent


def _balanced(text: str, start: int) -> str:
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i]
    return text[start + 1 :]


def _top_level(body: str) -> str:
    """The body with nested object types blanked out (their lines kept), so only its own fields match."""
    out, depth = [], 0
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            continue
        out.append(ch if depth == 0 or ch == "\n" else " ")
    return "".join(out)


def _call_end(text: str, open_at: int) -> int | None:
    i = text.find("(", open_at)
    depth = 0
    for j in range(i, min(len(text), i + 3000)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j
    return None


def _match_operation(call: Call, ops: dict) -> tuple[Operation | None, bool]:
    """The operation a call hits, and whether the path exists under another method."""
    candidates = []
    for (_method, path), op in ops.items():
        norm = _normalise(path)
        url = call.url
        if (
            url == norm
            or (url.startswith("{}") and norm.endswith(url[2:]) and len(url) > 3)
            or (not url.startswith("/") and norm.endswith("/" + url))
            or norm.endswith(url)
            and url.startswith("/")
        ):
            candidates.append(op)
    exact = [op for op in candidates if op.method == call.method]
    return (exact[0] if exact else None), bool(candidates)


_TS_TO_JSON = {"string": "string", "number": "number", "boolean": "boolean", "Date": "string"}


def _compatible(ts_type: str, json_type: str) -> bool:
    ts = ts_type.replace(" ", "").replace("|null", "").replace("|undefined", "")
    array = ts.endswith("[]") or ts.startswith("Array<")
    if array != json_type.endswith("[]"):
        return json_type in ("any", "object") or ts in ("any", "unknown")
    ts, json_type = ts.removesuffix("[]"), json_type.removesuffix("[]")
    if ts in ("any", "unknown") or json_type == "any":
        return True
    if "'" in ts or '"' in ts:  # a union of string literals
        return "string" in json_type
    expected = _TS_TO_JSON.get(ts)
    if expected is None:
        return "object" in json_type or json_type == "any" or ts[:1].isupper()
    kinds = set(json_type.split("|"))
    return expected in kinds or (expected == "number" and "integer" in kinds)


def backend_locations(root: Path | None, ops: dict) -> dict[str, tuple[str, int]]:
    """Where each operation's view function is defined, found by its django-ninja operationId
    (``<module>_<function>``): operationId -> (path, line)."""
    if root is None:
        return {}
    wanted = {op.operation_id: op for op in ops.values() if op.operation_id}
    found = {}
    for file in iter_files(root):
        if file.suffix != ".py" or file.name != "api.py" and "api" not in file.parts[-2:][0]:
            continue
        try:
            tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError, RecursionError, MemoryError):
            continue
        rel = file.relative_to(root).as_posix()
        prefix = rel[:-3].replace("/", "_")
        for node in ast.walk(tree):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and f"{prefix}_{node.name}" in wanted
            ):
                found[f"{prefix}_{node.name}"] = (rel, node.lineno)
    return found


def validate_contracts(
    schema: dict, frontend_root: Path | str, *, backend_root: Path | str | None = None, prefix: str = ""
) -> list[Finding]:
    """Mismatches between the frontend at ``frontend_root`` and ``schema``; paths relative to
    ``prefix`` (the frontend's place in the checkout)."""
    frontend_root = Path(frontend_root)
    ops = operations(schema)
    where = backend_locations(Path(backend_root) if backend_root else None, ops)
    calls, types = frontend_calls(frontend_root)
    findings = []

    def finding(
        call: Call,
        name: str,
        category: str,
        confidence: int,
        reason: str,
        op: Operation | None = None,
        line: int | None = None,
        path: str | None = None,
        fixable: bool = False,
        **extra,
    ) -> None:
        backend = {"method": op.method, "path": op.path, "operation_id": op.operation_id} if op else {}
        if op and op.operation_id in where:
            backend["file"], backend["line"] = where[op.operation_id]
        findings.append(
            Finding(
                kind="contract",
                category=category,
                path=prefix + (path or call.path),
                line=line or call.line,
                name=name,
                confidence=confidence,
                reason=reason,
                fixable=fixable,
                extra={"backend": backend, **extra} if backend or extra else {},
            )
        )

    for call in calls:
        if not call.url.startswith(("/", "{}")):
            continue
        op, path_known = _match_operation(call, ops)
        label = f"{call.method} {call.url}"
        if op is None:
            if not any(_normalise(p).split("/")[1:2] == call.url.split("/")[1:2] for (_m, p) in ops):
                continue  # not this backend's API at all (another service, a page URL)
            reason = (
                f"the backend has {call.url} but not for {call.method}"
                if path_known
                else f"no operation in the schema matches {label}"
            )
            finding(call, label, "missing_endpoint", 90, reason)
            continue
        if call.body is not None:
            for name, spec in op.request.items():
                if spec["required"] and name not in call.body:
                    finding(
                        call,
                        f"{label} {name}",
                        "required_field_not_sent",
                        85,
                        f"the request body lacks '{name}', which {op.method} {op.path} requires",
                        op,
                    )
            for name in sorted(call.body - set(op.request)):
                close = difflib.get_close_matches(name, list(op.request), n=1)
                hint = f"; renamed to '{close[0]}'?" if close else ""
                finding(
                    call,
                    f"{label} {name}",
                    "unknown_request_field",
                    75,
                    f"the request body sends '{name}', which {op.method} {op.path} does not accept{hint}",
                    op,
                )
        ts_type = types.get(call.response_type or "")
        if ts_type and op.response:
            for name, (ts, optional, line) in ts_type.fields.items():
                if name not in op.response:
                    close = difflib.get_close_matches(name, list(op.response), n=1)
                    hint = f"; renamed to '{close[0]}'?" if close else ""
                    finding(
                        call,
                        f"{ts_type.name}.{name}",
                        "missing_response_field",
                        60 if optional else 85,
                        f"'{ts_type.name}.{name}' is read from {op.method} {op.path}, whose response has no "
                        f"such field{hint}",
                        op,
                        line=line,
                        path=ts_type.path,
                        used_by=f"{call.path}:{call.line}",
                    )
                elif not _compatible(ts, op.response[name]["type"]):
                    finding(
                        call,
                        f"{ts_type.name}.{name}",
                        "type_mismatch",
                        80,
                        f"'{ts_type.name}.{name}' is typed {ts} but {op.method} {op.path} returns "
                        f"{op.response[name]['type']}",
                        op,
                        line=line,
                        path=ts_type.path,
                        used_by=f"{call.path}:{call.line}",
                    )
            for name, spec in sorted(op.response.items()):
                if spec["required"] or name in ts_type.fields or not re.fullmatch(r"[A-Za-z_$][\w$]*", name):
                    continue
                ts = ts_type_of(spec["type"], spec.get("nullable", False))
                edit = (
                    {
                        "content": f"{ts_type.insert_at[1]}{name}?: {ts};\n",
                        "location": {"row": ts_type.insert_at[0], "column": 1},
                        "end_location": {"row": ts_type.insert_at[0], "column": 1},
                    }
                    if ts_type.insert_at
                    else None
                )
                finding(
                    call,
                    f"{ts_type.name}.{name}",
                    TYPE_DRIFT,
                    50,
                    f"'{ts_type.name}' has no '{name}', an optional field {op.method} {op.path} returns; "
                    f"'{name}?: {ts}' keeps the type in step (types only: nothing runs differently)",
                    op,
                    line=ts_type.line,
                    path=ts_type.path,
                    fixable=edit is not None,
                    used_by=f"{call.path}:{call.line}",
                    **({"edits": [edit]} if edit else {}),
                )
    unique: dict = {}
    for f in findings:  # one type read through several calls is one mismatch
        unique.setdefault((f.category, f.path, f.line, f.name), f)
    return list(unique.values())


# ---- breaking changes between two schema versions (oasdiff's rule names) ----


def schema_diff(old: dict, new: dict) -> list[Finding]:
    """Breaking changes from ``old`` to ``new``, each named by the oasdiff rule it corresponds to."""
    before, after = operations(old), operations(new)
    findings = []

    def breaking(rule: str, op: Operation, reason: str, confidence: int = 95) -> None:
        findings.append(
            Finding(
                kind="contract",
                category="breaking_change",
                path=op.path,
                line=None,
                name=f"{rule} {op.method} {op.path}",
                confidence=confidence,
                reason=reason,
                extra={"rule": rule, "method": op.method},
            )
        )

    new_paths = {p for _m, p in after}
    for key, op in sorted(before.items()):
        if key not in after:
            if op.path in new_paths:
                breaking("api-removed-without-deprecation", op, f"{op.method} {op.path} was removed")
            else:
                breaking("api-path-removed-without-deprecation", op, f"path {op.path} was removed")
            continue
        now = after[key]
        for name, spec in now.request.items():
            was = op.request.get(name)
            if was is None and spec["required"]:
                breaking("new-required-request-property", now, f"the request now requires '{name}'")
            elif was and spec["required"] and not was["required"]:
                breaking("request-property-became-required", now, f"request field '{name}' became required")
            elif was and was["type"] != spec["type"]:
                breaking(
                    "request-property-type-changed",
                    now,
                    f"request field '{name}' changed from {was['type']} to {spec['type']}",
                )
        for name, was in op.response.items():
            spec = now.response.get(name)
            if spec is None:
                breaking(
                    "response-property-removed"
                    if not was["required"]
                    else "response-required-property-removed",
                    now,
                    f"response field '{name}' was removed",
                )
            elif spec["type"] != was["type"]:
                breaking(
                    "response-property-type-changed",
                    now,
                    f"response field '{name}' changed from {was['type']} to {spec['type']}",
                )
            elif was["required"] and not spec["required"]:
                breaking(
                    "response-property-became-optional", now, f"response field '{name}' may now be absent", 80
                )
        for name, spec in now.params.items():
            was = op.params.get(name)
            if was is None and spec["required"]:
                breaking(
                    "new-required-request-parameter", now, f"new required {spec['in']} parameter '{name}'"
                )
            elif was and spec["required"] and not was["required"]:
                breaking("request-parameter-became-required", now, f"parameter '{name}' became required")
            elif was and was["type"] != spec["type"]:
                breaking(
                    "request-parameter-type-changed",
                    now,
                    f"parameter '{name}' changed from {was['type']} to {spec['type']}",
                )
        for status in sorted(s for s in op.statuses - now.statuses if s.startswith("2")):
            breaking("response-success-status-removed", now, f"success status {status} was removed")
    return findings
