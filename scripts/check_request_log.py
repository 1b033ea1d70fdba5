#!/usr/bin/env python3
"""Check a CRM sandbox request log against the CRMs' official OpenAPI descriptions.

    python scripts/check_request_log.py --log requests.jsonl \\
        --spec hubspot=../shared/specs/hubspot/v3/contacts.json --spec pipedrive=../shared/specs/pipedrive/v2.yaml

The log is what ``crm_sandbox --request-log FILE`` writes: one JSON object per API request, with
``provider``, ``method``, ``path`` (the real API path), ``query`` (a dict of lists), ``body`` (with
``body_format``: ``form`` marks a form body logged as a dict of its fields) and ``status``; secret values
are logged as ``[redacted]``, which leaves the keys to check.
For every distinct (provider, method, path template) in the log the script reports whether a spec
declares the operation, whether every query parameter sent is declared for it, and whether the body's
top-level keys (and the keys of objects one level down, such as the items of ``inputs``) are declared in
its request body schema. Query values and top-level body values are also checked against a declared
``enum`` (and query values against ``boolean`` and ``integer`` types). Required parameters or body keys
that a request leaves out are listed as warnings, which do not change the exit status.

The specs are read from the paths given and never copied. JSON specs need only the standard library;
YAML specs need PyYAML (convert them to JSON first where it is not installed). A spec's paths are
matched below its server URL's path (``https://api.pipedrive.com/api/v2`` puts ``/persons`` at
``/api/v2/persons``); operation and path-item ``servers`` override the document's.

Exit status: 0 when everything sent is declared, 1 when anything is not, 2 for bad arguments or files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


# Specs -------------------------------------------------------------------------------------


def load_document(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
    try:
        import yaml
    except ImportError:
        raise SystemExit(f"{path}: reading YAML needs PyYAML; convert the spec to JSON and pass that.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None


@dataclass
class Operation:
    spec: str  # the spec file's name, for the report
    doc: dict  # the whole document, for $ref
    template: str  # the full path template, server prefix included
    method: str
    op: dict
    path_item: dict
    regex: re.Pattern = field(init=False)
    literal_segments: int = field(init=False)

    def __post_init__(self):
        parts = []
        for piece in re.split(r"(\{[^}/]+\})", self.template):
            parts.append("[^/]+" if piece.startswith("{") and piece.endswith("}") else re.escape(piece))
        self.regex = re.compile("".join(parts))
        self.literal_segments = sum(1 for s in self.template.split("/") if s and not s.startswith("{"))

    @property
    def label(self) -> str:
        return f"{self.spec}:{self.op.get('operationId', '?')}"


def server_prefixes(servers: list[dict] | None) -> list[str]:
    prefixes = []
    for server in servers or [{"url": "/"}]:
        url = server.get("url", "/")
        for name, variable in (server.get("variables") or {}).items():
            url = url.replace("{" + name + "}", str(variable.get("default", "")))
        prefixes.append(urlsplit(url).path.rstrip("/"))
    return list(dict.fromkeys(prefixes))


def operations_of(path: Path) -> list[Operation]:
    doc = load_document(path)
    found = []
    for template, item in (doc.get("paths") or {}).items():
        item = resolve(doc, item)
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            servers = op.get("servers") or item.get("servers") or doc.get("servers")
            for prefix in server_prefixes(servers):
                found.append(Operation(path.name, doc, prefix + template, method.upper(), op, item))
    return found


def resolve(doc: dict, node, seen: int = 0):
    """Follow local ``$ref``s (``#/components/...``); an external ref resolves to an empty, open schema."""
    while isinstance(node, dict) and "$ref" in node and seen < 50:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return {}
        target = doc
        for key in ref[2:].split("/"):
            target = target[key.replace("~1", "/").replace("~0", "~")]
        node = target
        seen += 1
    return node


def object_keys(doc: dict, schema, depth: int = 0) -> tuple[dict[str, dict], bool]:
    """The properties a schema declares (through allOf/oneOf/anyOf) and whether it allows other keys."""
    schema = resolve(doc, schema)
    if not isinstance(schema, dict) or depth > 10:
        return {}, True
    properties = {name: resolve(doc, s) for name, s in (schema.get("properties") or {}).items()}
    extra = schema.get("additionalProperties")
    open_ = bool(extra) and extra != {"not": {}}
    composed = False
    for keyword in ("allOf", "oneOf", "anyOf"):
        for branch in schema.get(keyword) or []:
            branch = resolve(doc, branch)
            if keyword == "allOf" and not _shapes_object(branch):
                continue  # a bare title or description adds nothing
            composed = True
            branch_properties, branch_open = object_keys(doc, branch, depth + 1)
            properties.update(branch_properties)
            open_ = open_ or branch_open
    if not properties and not composed and schema.get("type") in (None, "object"):
        open_ = True  # a free-form object
    return properties, open_


def _shapes_object(schema) -> bool:
    return isinstance(schema, dict) and any(
        key in schema for key in ("properties", "additionalProperties", "allOf", "oneOf", "anyOf", "type", "$ref")
    )


def schema_type(doc: dict, schema) -> str | None:
    schema = resolve(doc, schema)
    if not isinstance(schema, dict):
        return None
    if schema.get("type"):
        return schema["type"]
    for keyword in ("allOf", "oneOf", "anyOf"):
        for branch in schema.get(keyword) or []:
            found = schema_type(doc, branch)
            if found:
                return found
    if "properties" in schema:
        return "object"
    return None


# Matching and checking -------------------------------------------------------------------------


def match(operations: list[Operation], method: str, path: str) -> tuple[Operation | None, Operation | None]:
    """The most specific operation for ``method path``, else the most specific one for the path alone."""
    candidates = [op for op in operations if op.regex.fullmatch(path)]
    candidates.sort(key=lambda op: (-op.literal_segments, op.template.count("{")))
    for op in candidates:
        if op.method == method:
            return op, None
    return None, (candidates[0] if candidates else None)


def variants(operations: list[Operation], operation: Operation) -> list[Operation]:
    """``operation`` and the same method on its template with or without a trailing slash.

    OpenAPI allows one operation per method and path, so a spec describes two bodies of one endpoint as
    ``/oauth/token`` and ``/oauth/token/`` (Pipedrive's code exchange and refresh). A request passes when
    one of the variants declares everything it sends.
    """
    same = [
        op
        for op in operations
        if op is not operation
        and op.method == operation.method
        and op.template.rstrip("/") == operation.template.rstrip("/")
    ]
    return [operation, *same]


def query_parameters(operation: Operation) -> dict[str, dict]:
    declared = {}
    doc = operation.doc
    for parameter in (operation.path_item.get("parameters") or []) + (operation.op.get("parameters") or []):
        parameter = resolve(doc, parameter)
        if parameter.get("in") == "query":
            declared[parameter["name"]] = parameter
    return declared


def bad_query_value(doc: dict, parameter: dict, value: str) -> bool:
    schema = resolve(doc, parameter.get("schema") or {})
    kind = schema_type(doc, schema)
    values = [value]
    if kind == "array":
        schema = resolve(doc, schema.get("items") or {})
        kind = schema_type(doc, schema)
        values = value.split(",")
    allowed = [str(v).lower() if isinstance(v, bool) else str(v) for v in schema.get("enum") or []]
    for one in values:
        if allowed and one not in allowed:
            return True
        if kind == "boolean" and one not in ("true", "false", "0", "1"):
            return True
        if kind == "integer" and not re.fullmatch(r"-?\d+", one):
            return True
    return False


def body_of(entry: dict) -> tuple[str | None, object]:
    """("json" | "form" | "text" | None, the parsed body) of a logged request."""
    body = entry.get("body")
    if body is None or body == "":
        return None, None
    if entry.get("body_format") == "form" and isinstance(body, dict):  # the sandbox logs form fields as a dict
        return "form", body
    if isinstance(body, (dict, list)):
        return "json", body
    if isinstance(body, str) and re.fullmatch(r"[^=&\s]+=[^&\s]*(&[^=&\s]+=[^&\s]*)*", body):
        return "form", {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}
    return "text", body


def body_schema(operation: Operation, kind: str) -> tuple[str | None, dict | None]:
    request_body = resolve(operation.doc, operation.op.get("requestBody"))
    if not request_body:
        return None, None
    content = request_body.get("content") or {}
    wanted = {"json": ("json",), "form": ("x-www-form-urlencoded", "form-data")}.get(kind, ())
    for content_type, media in content.items():
        if any(word in content_type for word in wanted):
            return content_type, resolve(operation.doc, media.get("schema") or {})
    return ",".join(content) or "none", None


@dataclass
class Group:
    provider: str
    method: str
    template: str
    operation: Operation | None = None
    path_only: Operation | None = None  # the path is declared, but not for this method
    alternatives: list[Operation] = field(default_factory=list)  # see variants()
    used: set[str] = field(default_factory=set)  # the labels of the operations requests passed against
    no_spec: bool = False
    calls: int = 0
    statuses: Counter = field(default_factory=Counter)
    undeclared_query: set[str] = field(default_factory=set)
    bad_values: set[str] = field(default_factory=set)
    undeclared_body: set[str] = field(default_factory=set)
    body_problems: set[str] = field(default_factory=set)
    missing_required: set[str] = field(default_factory=set)

    @property
    def problems(self) -> list[str]:
        found = []
        if self.no_spec:
            found.append("no spec given for this provider")
        elif self.operation is None:
            if self.path_only:
                found.append(f"path is declared ({self.path_only.template}) but not for {self.method}")
            else:
                found.append("operation not declared")
        if self.undeclared_query:
            found.append("undeclared query parameter(s): " + ", ".join(sorted(self.undeclared_query)))
        if self.bad_values:
            found.append("query value(s) outside the declared schema: " + ", ".join(sorted(self.bad_values)))
        if self.undeclared_body:
            found.append("undeclared body key(s): " + ", ".join(sorted(self.undeclared_body)))
        found += sorted(self.body_problems)
        return found


def check_keys(doc: dict, schema, data: dict, prefix: str, group: Group, *, nested: bool) -> None:
    properties, open_ = object_keys(doc, schema)
    for key, value in data.items():
        if key not in properties:
            if not open_:
                group.undeclared_body.add(prefix + key)
            continue
        declared = properties[key]
        allowed = resolve(doc, declared).get("enum")
        if allowed and isinstance(value, (str, int, float, bool)) and value not in allowed:
            group.body_problems.add(f"body {prefix}{key}={value!r} is not among the declared values")
        if not nested:
            continue
        kind = schema_type(doc, declared)
        if isinstance(value, list) and kind == "array":
            items = resolve(doc, declared.get("items") or {})
            item_kind = schema_type(doc, items)
            for item in value:
                if isinstance(item, dict):
                    if item_kind not in (None, "object"):
                        problem = f"body {prefix}{key}[] items are objects; the spec declares {item_kind}"
                        group.body_problems.add(problem)
                    else:
                        check_keys(doc, items, item, f"{prefix}{key}[].", group, nested=False)
        elif isinstance(value, dict) and kind in (None, "object"):
            check_keys(doc, declared, value, f"{prefix}{key}.", group, nested=False)


def check_entry(group: Group, entry: dict) -> None:
    """Check one request against the group's operation or, failing that, one of its variants."""
    if group.operation is None:
        return
    results = []
    for operation in group.alternatives or [group.operation]:
        scratch = Group(group.provider, group.method, group.template, operation)
        check_against(operation, scratch, entry)
        if not scratch.problems:
            break
        results.append(scratch)
    else:
        operation, scratch = group.operation, results[0]
    group.used.add(operation.label)
    group.undeclared_query |= scratch.undeclared_query
    group.bad_values |= scratch.bad_values
    group.undeclared_body |= scratch.undeclared_body
    group.body_problems |= scratch.body_problems
    group.missing_required |= scratch.missing_required


def check_against(operation: Operation, group: Group, entry: dict) -> None:
    doc = operation.doc
    declared = query_parameters(operation)
    sent = entry.get("query") or {}
    for name, values in sent.items():
        if name not in declared:
            group.undeclared_query.add(name)
            continue
        for value in values if isinstance(values, list) else [values]:
            if bad_query_value(doc, declared[name], str(value)):
                group.bad_values.add(f"{name}={value}")
    for name, parameter in declared.items():
        if parameter.get("required") and name not in sent:
            group.missing_required.add(f"query {name}")

    kind, body = body_of(entry)
    content_type, schema = body_schema(operation, kind or "")
    if kind is None:
        request_body = resolve(doc, operation.op.get("requestBody"))
        if request_body and request_body.get("required"):
            group.missing_required.add("request body")
        return
    if content_type is None:
        group.body_problems.add(f"a {kind} body is sent; the operation declares no request body")
        return
    if schema is None:
        group.body_problems.add(f"a {kind} body is sent; the operation declares only {content_type}")
        return
    if not isinstance(body, dict):
        if schema_type(doc, schema) not in (None, "array"):
            group.body_problems.add(f"a {type(body).__name__} body is sent; the spec declares an object")
        return
    check_keys(doc, schema, body, "", group, nested=True)
    for name in resolve(doc, schema).get("required") or []:
        if name not in body:
            group.missing_required.add(f"body {name}")


def fallback_template(entry: dict) -> str:
    """For a request no spec declares: the sandbox's endpoint label, else the concrete path."""
    label = entry.get("endpoint") or ""
    method, _, template = label.partition(" ")
    if method == entry["method"] and template.startswith("/"):
        return template
    return entry["path"]


def check(entries: list[dict], specs: dict[str, list[Operation]]) -> list[Group]:
    groups: dict[tuple[str, str, str], Group] = {}
    for entry in entries:
        provider, method, path = entry["provider"], entry["method"].upper(), entry["path"]
        operations = specs.get(provider)
        operation, path_only = match(operations, method, path) if operations else (None, None)
        template = (operation or path_only).template if (operation or path_only) else fallback_template(entry)
        key = (provider, method, template)
        if key not in groups:
            groups[key] = Group(provider, method, template, operation, path_only, no_spec=operations is None)
            if operation:
                groups[key].alternatives = variants(operations, operation)
        group = groups[key]
        group.calls += 1
        group.statuses[str(entry.get("status"))] += 1
        check_entry(group, entry)
    return sorted(groups.values(), key=lambda g: (g.provider, g.template, g.method))


# Output --------------------------------------------------------------------------------------


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def report(groups: list[Group], log_count: int, out=sys.stdout) -> int:
    rows = [["provider", "method", "path template", "calls", "statuses", "declared in", "result"]]
    for group in groups:
        statuses = " ".join(f"{status}x{n}" for status, n in sorted(group.statuses.items()))
        where = " | ".join(sorted(group.used)) if group.used else "-"
        rows.append(
            [
                group.provider,
                group.method,
                group.template,
                str(group.calls),
                statuses,
                where,
                "MISMATCH" if group.problems else "ok",
            ]
        )
    print(f"{log_count} logged requests, {len(groups)} distinct operations\n", file=out)
    print(table(rows), file=out)
    failing = [group for group in groups if group.problems]
    if failing:
        print("\nMismatches:", file=out)
        for group in failing:
            print(f"  {group.provider} {group.method} {group.template}", file=out)
            for problem in group.problems:
                print(f"    - {problem}", file=out)
    warned = [group for group in groups if group.missing_required]
    if warned:
        print("\nRequired by the spec but not sent in some requests (not counted as a mismatch):", file=out)
        for group in warned:
            missing = ", ".join(sorted(group.missing_required))
            print(f"  {group.provider} {group.method} {group.template}: {missing}", file=out)
    print(f"\n{len(failing)} of {len(groups)} operations have mismatches.", file=out)
    return 1 if failing else 0


def read_log(paths: list[Path]) -> list[dict]:
    entries = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise SystemExit(f"{path}:{number}: not JSON ({exc})") from None
            if not all(key in entry for key in ("provider", "method", "path")):
                raise SystemExit(f"{path}:{number}: a log line needs provider, method and path")
            entries.append(entry)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", action="append", required=True, type=Path, help="A request log; repeatable.")
    parser.add_argument(
        "--spec",
        action="append",
        required=True,
        metavar="PROVIDER=PATH",
        help="An OpenAPI file (JSON, or YAML with PyYAML) for a provider; repeatable, several per provider.",
    )
    args = parser.parse_args(argv)
    specs: dict[str, list[Operation]] = defaultdict(list)
    try:
        for spec in args.spec:
            provider, sep, path = spec.partition("=")
            if not sep or not provider or not path:
                parser.error(f"--spec {spec!r}: expected PROVIDER=PATH")
            specs[provider].extend(operations_of(Path(path)))
        entries = read_log(args.log)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"error: {exc.code}", file=sys.stderr)
            return 2
        raise
    return report(check(entries, dict(specs)), len(entries))


if __name__ == "__main__":
    sys.exit(main())
