"""The Kubernetes v1.32 OpenAPI schemas, served as kubectl fetches them and used for what the
API server does with them: strict field validation and strategic merge metadata.

The schemas are not written here: they come from the ``kubernetes-validate`` dev dependency,
which ships the upstream JSON schemas per Kubernetes version (with the ``x-kubernetes-*``
extensions: patch strategies, merge keys, list types, group-version-kinds). They are turned
back into the OpenAPI v3 shape the API server publishes (``#/components/schemas`` refs, no
nullable type lists).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tests.emulator.server import KINDS, KindInfo

Obj = dict[str, Any]
VERSION = "v1.32.0"
_PREFIX = "#/$defs/"
_V3_PREFIX = "#/components/schemas/"


def _normalise(node: Any) -> Any:
    """JSON-schema (nullable) → OpenAPI v3 as the API server serves it."""
    if isinstance(node, list):
        return [_normalise(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace(_PREFIX, _V3_PREFIX)
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out[key] = types[0] if len(types) == 1 else types
        else:
            out[key] = _normalise(value)
    return out


@functools.cache
def definitions() -> dict[str, Obj]:
    """Every v1.32 definition by name (``io.k8s.api.apps.v1.Deployment``), v3-shaped."""
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"{VERSION}-local"
    raw = json.loads((base / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
    defs: dict[str, Obj] = _normalise(raw)
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
    return defs


@functools.cache
def gvk_index() -> dict[tuple[str, str, str], str]:
    out = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            out[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return out


def schema_name(info: KindInfo) -> str | None:
    return gvk_index().get((info.group, info.version, info.kind))


def resolve(schema: Obj | None) -> Obj:
    """Follow ``$ref`` (also inside a single ``allOf``) to the schema it names."""
    while schema:
        ref = schema.get("$ref") or next(
            (s["$ref"] for s in schema.get("allOf", []) if "$ref" in s), None)
        if not ref:
            return schema
        schema = definitions().get(ref.removeprefix(_V3_PREFIX))
    return schema or {}


def child(schema: Obj, key: str) -> Obj:
    """The schema of field ``key`` of an object schema (``{}``: free-form / unknown)."""
    s = resolve(schema)
    props = s.get("properties")
    if props is not None:
        return props.get(key) or {}
    extra = s.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def items(schema: Obj) -> Obj:
    return resolve(schema).get("items") or {}


def kind_schema(info: KindInfo) -> Obj:
    name = schema_name(info)
    return definitions()[name] if name else {}


# --- strict field validation ------------------------------------------------------------------


def unknown_fields(info: KindInfo, obj: Obj) -> list[str]:
    """Paths of fields the v1.32 schema of ``info`` does not know (what ``fieldValidation=Strict``
    rejects), in the API server's notation: ``spec.template.spec.containers[0].imagee``."""
    found: list[str] = []
    _walk(kind_schema(info), obj, "", found)
    return found


def _walk(schema: Obj, value: Any, path: str, found: list[str]) -> None:
    s = resolve(schema)
    if not s or s.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = s.get("properties")
        extra = s.get("additionalProperties")
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _walk(props[key], sub, where, found)
            elif isinstance(extra, dict):
                _walk(extra, sub, where, found)
            elif props is not None and extra is None:
                found.append(where)
    elif isinstance(value, list) and s.get("type") == "array":
        for i, sub in enumerate(value):
            _walk(s.get("items") or {}, sub, f"{path}[{i}]", found)


def type_errors(info: KindInfo, obj: Obj) -> list[str]:
    """Values of the wrong JSON type (a string where an integer belongs, ...)."""
    found: list[str] = []
    _types(kind_schema(info), obj, "", found)
    return found


_PY = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}


def _types(schema: Obj, value: Any, path: str, found: list[str]) -> None:
    s = resolve(schema)
    if not s or value is None or s.get("x-kubernetes-int-or-string") or "oneOf" in s:
        return
    t = s.get("type")
    if isinstance(t, str) and t in _PY:
        ok = isinstance(value, _PY[t]) and not (t == "integer" and isinstance(value, bool))
        if t == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            found.append(f"{path}: expected {t}, got {type(value).__name__}")
            return
    if isinstance(value, dict):
        props = s.get("properties") or {}
        extra = s.get("additionalProperties")
        for key, sub in value.items():
            nxt = props.get(key) or (extra if isinstance(extra, dict) else None)
            if nxt:
                _types(nxt, sub, f"{path}.{key}" if path else key, found)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _types(s.get("items") or {}, sub, f"{path}[{i}]", found)


# --- the documents kubectl downloads ------------------------------------------------------------


def _gv_path(info: KindInfo) -> str:
    return f"api/{info.version}" if not info.group else f"apis/{info.group}/{info.version}"


@dataclass(frozen=True)
class _Doc:
    body: bytes
    hash: str


def _closure(names: list[str]) -> dict[str, Obj]:
    defs = definitions()
    out: dict[str, Obj] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out or name not in defs:
            continue
        out[name] = defs[name]
        todo.extend(r.removeprefix(_V3_PREFIX) for r in _refs(defs[name]))
    return out


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for v in node.values():
            found.extend(_refs(v))
        return found
    if isinstance(node, list):
        return [r for n in node for r in _refs(n)]
    return []


_QUERY = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def _operation(info: KindInfo, verb: str, schema: str) -> Obj:
    ref = {"$ref": _V3_PREFIX + schema}
    op: Obj = {
        "operationId": f"{verb}{info.kind}",
        "parameters": [{"name": q, "in": "query", "schema": {"type": "string"}}
                       for q in _QUERY],
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": ref}}}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": info.group, "kind": info.kind,
                                            "version": info.version},
    }
    if verb in ("patch", "put", "post"):
        types = (["application/apply-patch+yaml", "application/json-patch+json",
                  "application/merge-patch+json", "application/strategic-merge-patch+json"]
                 if verb == "patch" else ["application/json", "application/yaml"])
        op["requestBody"] = {"content": {t: {"schema": ref} for t in types}}
    return op


@functools.cache
def gv_document(gv_path: str) -> _Doc:
    """``/openapi/v3/<gv_path>``: paths for every kind of that group-version (each with its
    PATCH operation declaring ``fieldValidation``: kubectl checks that before it validates on
    the server) and the schemas they reference."""
    kinds = [k for k in KINDS if _gv_path(k) == gv_path and schema_name(k)]
    paths: Obj = {}
    for k in kinds:
        name = schema_name(k)
        assert name is not None
        base = "/" + gv_path + ("/namespaces/{namespace}" if k.namespaced else "") + "/" + k.plural
        paths[base] = {"get": _operation(k, "list", name), "post": _operation(k, "post", name)}
        paths[base + "/{name}"] = {"get": _operation(k, "get", name),
                                   "put": _operation(k, "put", name),
                                   "patch": _operation(k, "patch", name),
                                   "delete": _operation(k, "delete", name)}
    schemas = _closure([n for k in kinds if (n := schema_name(k))])
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION},
           "paths": paths, "components": {"schemas": copy.deepcopy(schemas)}}
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return _Doc(body, hashlib.sha512(body).hexdigest()[:128].upper())


def root() -> Obj:
    """``/openapi/v3``: where each group-version's document lives."""
    gvs = sorted({_gv_path(k) for k in KINDS if schema_name(k)})
    return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={gv_document(gv).hash}"}
                      for gv in gvs}}
