"""Strategic merge patch and server-side apply, driven by the v1.32 schemas' patch metadata.

Strategic merge (what ``kubectl apply``, ``set image``, ``label`` and ``rollout undo`` send):
maps merge, ``null`` deletes, lists with ``x-kubernetes-patch-strategy: merge`` merge by their
``x-kubernetes-patch-merge-key`` (primitive lists: union), other lists are replaced; the
directives ``$patch`` (replace, delete), ``$retainKeys``, ``$setElementOrder/<field>`` and
``$deleteFromPrimitiveList/<field>`` are honoured. Server-side apply merges the applied
configuration into the live object by ``x-kubernetes-list-map-keys`` and removes what the same
field manager applied before and no longer applies (ownership by other managers is not
tracked: every apply is treated as forced).
"""

from __future__ import annotations

import copy
from typing import Any

from tests.simcluster.openapi import child, items

Obj = dict[str, Any]
_DIRECTIVE = "$"


def _strategy(schema: Obj) -> str:
    return str(schema.get("x-kubernetes-patch-strategy") or "")


def strategic_merge(original: Any, patch: Any, schema: Obj) -> Any:
    """``original`` with the strategic merge ``patch`` applied (neither is modified)."""
    if not isinstance(patch, dict):
        return _clean(patch, schema)
    if patch.get("$patch") == "replace":
        return _clean({k: v for k, v in patch.items() if k != "$patch"}, schema)
    out: Obj = copy.deepcopy(original) if isinstance(original, dict) else {}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        sub = child(schema, key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list):
            if "merge" in _strategy(sub) and isinstance(out.get(key), list):
                out[key] = _merge_list(out[key], value, sub)
            else:
                out[key] = _clean(value, sub)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                out.pop(key, None)
            else:
                out[key] = strategic_merge(out.get(key), value, sub)
        else:
            out[key] = value
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            out[field] = _reorder(out[field], order, child(schema, field))
    return out


def _merge_key(list_schema: Obj) -> str | None:
    key = list_schema.get("x-kubernetes-patch-merge-key")
    return str(key) if key else None


def _merge_list(current: list[Any], patch: list[Any], schema: Obj) -> list[Any]:
    key = _merge_key(schema)
    item_schema = items(schema)
    out = copy.deepcopy(current)
    if key is None:  # a merged list of primitives: union, order kept
        for v in patch:
            if isinstance(v, dict) and v.get("$patch") == "delete":
                continue
            if v not in out:
                out.append(copy.deepcopy(v))
        return out
    for entry in patch:
        if not isinstance(entry, dict):
            continue
        idx = next((i for i, e in enumerate(out)
                    if isinstance(e, dict) and e.get(key) == entry.get(key)), None)
        if entry.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(strategic_merge({}, entry, item_schema))
        else:
            out[idx] = strategic_merge(out[idx], entry, item_schema)
    return out


def _reorder(values: list[Any], order: list[Any], schema: Obj) -> list[Any]:
    key = _merge_key(schema)

    def ident(v: Any) -> Any:
        return v.get(key) if key and isinstance(v, dict) else v

    wanted = [ident(o) for o in order]
    first = sorted((v for v in values if ident(v) in wanted), key=lambda v: wanted.index(ident(v)))
    return first + [v for v in values if ident(v) not in wanted]


def _clean(value: Any, schema: Obj) -> Any:
    """A value with any strategic-merge directives inside it removed."""
    if isinstance(value, dict):
        return strategic_merge({}, value, schema)
    if isinstance(value, list):
        sub = items(schema)
        return [_clean(v, sub) for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return copy.deepcopy(value)


# --- server-side apply ----------------------------------------------------------------------


def _list_keys(schema: Obj) -> list[str] | None:
    if schema.get("x-kubernetes-list-type") == "map":
        return list(schema.get("x-kubernetes-list-map-keys") or [])
    return None


def _ident(entry: Any, keys: list[str]) -> tuple[Any, ...]:
    return tuple(entry.get(k) for k in keys) if isinstance(entry, dict) else (entry,)


def apply_merge(live: Any, applied: Any, schema: Obj) -> Any:
    """The applied configuration merged into the live object (list-maps by their keys, sets
    by union, atomic lists and scalars replaced)."""
    if not isinstance(applied, dict) or not isinstance(live, dict):
        if isinstance(applied, list) and isinstance(live, list):
            keys = _list_keys(schema)
            if keys:
                out = copy.deepcopy(live)
                for entry in applied:
                    i = next((n for n, e in enumerate(out)
                              if _ident(e, keys) == _ident(entry, keys)), None)
                    if i is None:
                        out.append(copy.deepcopy(entry))
                    else:
                        out[i] = apply_merge(out[i], entry, items(schema))
                return out
            if schema.get("x-kubernetes-list-type") == "set":
                return copy.deepcopy(live) + [v for v in applied if v not in live]
        return copy.deepcopy(applied)
    out = copy.deepcopy(live)
    for key, value in applied.items():
        out[key] = apply_merge(out.get(key), value, child(schema, key))
    return out


def remove_unapplied(merged: Any, previous: Any, applied: Any, schema: Obj) -> Any:
    """Drop from ``merged`` what the manager applied before (``previous``) and no longer does."""
    if isinstance(previous, dict) and isinstance(merged, dict):
        applied = applied if isinstance(applied, dict) else {}
        for key, old in previous.items():
            if key not in applied:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = remove_unapplied(merged[key], old, applied[key], child(schema, key))
        return merged
    if isinstance(previous, list) and isinstance(merged, list) and isinstance(applied, list):
        keys = _list_keys(schema)
        if keys:
            now = {_ident(e, keys) for e in applied}
            gone = {_ident(e, keys) for e in previous} - now
            kept = [e for e in merged if _ident(e, keys) not in gone]
            prev = {_ident(e, keys): e for e in previous}
            new = {_ident(e, keys): e for e in applied}
            return [remove_unapplied(e, prev[_ident(e, keys)], new[_ident(e, keys)], items(schema))
                    if _ident(e, keys) in prev and _ident(e, keys) in new else e for e in kept]
        if schema.get("x-kubernetes-list-type") == "set":
            return [v for v in merged if v in applied or v not in previous]
    return merged
