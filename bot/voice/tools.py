"""Read-only tools over the learner's own cluster, for the model's tool-use loop.

Every call is addressed by the learner id the engine put in the :class:`VoiceTurn`, never by
anything in the model's input: the provider maps that id to the learner's ``ApiClient`` and
the tool schemas have no field that names a cluster, a learner or a server. The only HTTP
verb issued is GET. Secrets are refused as a kind, and anything secret-shaped that reaches an
answer anyway (Secret ``data``, env values fed from ``secretKeyRef``, credential-looking
strings in ConfigMaps) is stripped. Output is capped so one tool result cannot blow the
token budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from bot.core.text import from_outside, strip_controls
from sandbox.kinds import KINDS as ALL_KINDS
from sandbox.kinds import Kind

log = logging.getLogger(__name__)

ClusterProvider = Callable[[str], ApiClient | None]
Obj = dict[str, Any]

MAX_CHARS = 6000
MAX_LOG_BYTES = 16_000
MAX_ITEMS = 50


# The kinds the crew may look at: the one registry (sandbox.kinds), without Secrets (they
# are refused by name too).
KINDS: tuple[Kind, ...] = tuple(k for k in ALL_KINDS if k.kind != "Secret")
_REFUSED = {"secret", "secrets"}
_BY_NAME: dict[str, Kind] = {}
for _k in KINDS:
    for _n in (_k.kind, _k.plural, _k.singular, *_k.short_names):
        _BY_NAME[_n.lower()] = _k

_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SELECTOR = re.compile(r"^[A-Za-z0-9_./=!,()\- ]{0,256}$")
_SENSITIVE_ENV = re.compile(r"pass|token|secret|key|credential|auth", re.IGNORECASE)


class ToolError(Exception):
    """A refusal or a failed read, reported to the model as the tool's result."""


# --- tool definitions (what the model sees) ------------------------------------------------

_KIND_PROP = {
    "type": "string",
    "description": "Kind, plural or short name, e.g. pods, deploy, svc, pvc, nodes, events.",
}
_NS_PROP = {"type": "string", "description": 'Namespace (default: "default").'}

TOOL_DEFINITIONS: list[Obj] = [
    {
        "name": "list_objects",
        "description": (
            "List objects of one kind in the learner's own cluster (read-only), one line each "
            "with the key status columns, like `kubectl get`. Secrets cannot be read."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "kind": _KIND_PROP,
                "namespace": {
                    "type": "string",
                    "description": (
                        'Namespace; omit for the default namespace, "*" for all namespaces.'
                    ),
                },
                "label_selector": {"type": "string", "description": "e.g. app=life-support"},
            },
            "required": ["kind"],
            "additionalProperties": False,
        },
    },
    {
        "name": "get_object",
        "description": (
            "Read one object from the learner's own cluster as JSON (read-only, managed fields "
            "and secret values removed)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"kind": _KIND_PROP, "name": {"type": "string"}, "namespace": _NS_PROP},
            "required": ["kind", "name"],
            "additionalProperties": False,
        },
    },
    {
        "name": "describe_object",
        "description": (
            "Like `kubectl describe`: a summary of one object (status, conditions, containers) "
            "and the recent events about it, from the learner's own cluster."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"kind": _KIND_PROP, "name": {"type": "string"}, "namespace": _NS_PROP},
            "required": ["kind", "name"],
            "additionalProperties": False,
        },
    },
    {
        "name": "list_events",
        "description": "Recent events in one namespace of the learner's own cluster, newest last.",
        "input_schema": {
            "type": "object",
            "properties": {"namespace": _NS_PROP},
            "additionalProperties": False,
        },
    },
    {
        "name": "pod_logs",
        "description": "The last lines of one container's log in a pod of the learner's own cluster.",
        "input_schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Pod name."},
                "namespace": _NS_PROP,
                "container": {"type": "string", "description": "Container (if several)."},
                "tail_lines": {"type": "integer", "minimum": 1, "maximum": 200},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    },
]
TOOL_NAMES = frozenset(t["name"] for t in TOOL_DEFINITIONS)


# --- sanitising ----------------------------------------------------------------------------


def sanitise(obj: Any) -> Any:
    """A copy without managed fields, last-applied annotations or any secret values."""
    if isinstance(obj, list):
        return [sanitise(x) for x in obj]
    if isinstance(obj, str):
        return strip_controls(obj)  # before JSON would hide them as \u001b escapes
    if not isinstance(obj, dict):
        return obj
    out: Obj = {}
    is_secret = str(obj.get("kind", "")).lower() == "secret"
    for key, value in obj.items():
        if key in ("managedFields", "stringData") or (is_secret and key in ("data", "binaryData")):
            continue
        if key == "annotations" and isinstance(value, dict):
            value = {k: v for k, v in value.items()
                     if k != "kubectl.kubernetes.io/last-applied-configuration"}  # fmt: skip
        if key == "env" and isinstance(value, list):
            value = [_env(e) for e in value]
        out[key] = sanitise(value)
    return out


def _env(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    entry = dict(entry)
    if "secretKeyRef" in (entry.get("valueFrom") or {}):
        entry.pop("value", None)
    elif "value" in entry and _SENSITIVE_ENV.search(str(entry.get("name", ""))):
        entry["value"] = "[redacted]"
    return entry


def cap(text: str, limit: int = MAX_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 40] + f"\n… [truncated, {len(text) - limit + 40} more chars]"


# --- the tools -----------------------------------------------------------------------------


class ClusterTools:
    """The read-only tools, bound to a provider of per-learner API clients."""

    definitions: list[Obj] = TOOL_DEFINITIONS

    def __init__(
        self,
        provider: ClusterProvider,
        *,
        timeout: float = 10.0,
        max_chars: int = MAX_CHARS,
        executor: Executor | None = None,
    ) -> None:
        self._provider = provider
        self._timeout = timeout
        self._max_chars = max_chars
        self._executor = executor

    async def run(self, learner_id: str, name: str, args: Mapping[str, Any]) -> tuple[str, bool]:
        """Run tool ``name`` against ``learner_id``'s cluster: (text, is_error). Never raises."""
        try:
            if name not in TOOL_NAMES:
                raise ToolError(f"unknown tool {name!r}")
            api = self._provider(learner_id)
            if api is None:
                raise ToolError("this crew member has no cluster connected yet")
            method = getattr(self, f"_{name}")
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self._executor, lambda: method(api, dict(args)))
            text = await asyncio.wait_for(call, self._timeout)
            return cap(from_outside(text), self._max_chars), False
        except ToolError as exc:
            return str(exc), True
        except TimeoutError:
            return "the cluster did not answer in time", True
        except ApiException as exc:
            return from_outside(f"the cluster answered {exc.status} {exc.reason or ''}".strip()), True
        except Exception as exc:  # a tool must never take the conversation down
            log.warning("voice tool %s failed: %s", name, type(exc).__name__)
            return f"the read failed ({type(exc).__name__})", True

    # -- HTTP --

    def _get(self, api: ApiClient, path: str, query: list[tuple[str, Any]] | None = None,
             *, raw: bool = False) -> Any:  # fmt: skip
        """GET ``path`` (already built from validated parts) and return JSON or text."""
        method, url, headers, body, post = api.param_serialize(
            "GET", path, query_params=query or [], auth_settings=["BearerToken"]
        )
        resp = api.call_api(method, url, headers, body, post, _request_timeout=self._timeout)
        resp.read()
        if resp.status >= 400:
            raise ApiException(status=resp.status, reason=resp.reason)
        data = resp.data or b""
        return data.decode("utf-8", "replace") if raw else json.loads(data)

    # -- validation --

    @staticmethod
    def _resolve(kind: Any) -> Kind:
        key = str(kind or "").strip().lower()
        if key in _REFUSED:
            raise ToolError("Secrets are sealed: the crew never reads them")
        if key not in _BY_NAME:
            raise ToolError(f"unknown or unreadable kind {kind!r}")
        return _BY_NAME[key]

    @staticmethod
    def _ns(value: Any, allow_all: bool = False) -> str | None:
        ns = str(value or "default").strip()
        if allow_all and ns in ("*", "all"):
            return None
        if not _NAMESPACE.match(ns):
            raise ToolError(f"invalid namespace {ns!r}")
        return ns

    @staticmethod
    def _name(value: Any) -> str:
        name = str(value or "").strip()
        if not _NAME.match(name):
            raise ToolError(f"invalid name {name!r}")
        return name

    @staticmethod
    def _path(k: Kind, namespace: str | None, name: str | None = None) -> str:
        path = k.prefix
        if k.namespaced and namespace is not None:
            path += f"/namespaces/{namespace}"
        path += f"/{k.plural}"
        return path + (f"/{name}" if name else "")

    # -- tools --

    def _list_objects(self, api: ApiClient, args: Obj) -> str:
        k = self._resolve(args.get("kind"))
        ns = self._ns(args.get("namespace"), allow_all=True)
        query: list[tuple[str, Any]] = [("limit", MAX_ITEMS)]
        if selector := str(args.get("label_selector") or "").strip():
            if not _SELECTOR.match(selector):
                raise ToolError("invalid label selector")
            query.append(("labelSelector", selector))
        listing = self._get(api, self._path(k, ns), query)
        items = listing.get("items", [])
        more = bool((listing.get("metadata") or {}).get("continue")) or len(items) > MAX_ITEMS
        items = items[:MAX_ITEMS]
        where = "" if not k.namespaced else f" in {ns or 'all namespaces'}"
        if not items:
            return f"No {k.plural}{where}."
        text = f"{len(items)} {k.plural}{where}:\n" + "\n".join(row(k.kind, i) for i in items)
        if more:
            text += f"\n(more than {MAX_ITEMS}; narrow with a namespace or label selector)"
        return text

    def _get_object(self, api: ApiClient, args: Obj) -> str:
        k = self._resolve(args.get("kind"))
        obj = self._get(api, self._path(k, self._ns(args.get("namespace")),
                                         self._name(args.get("name"))))  # fmt: skip
        obj = sanitise(obj)
        return json.dumps(obj, indent=1, sort_keys=False)

    def _describe_object(self, api: ApiClient, args: Obj) -> str:
        k = self._resolve(args.get("kind"))
        ns = self._ns(args.get("namespace"))
        name = self._name(args.get("name"))
        obj = sanitise(self._get(api, self._path(k, ns, name)))
        events_path = f"/api/v1/namespaces/{ns if k.namespaced else 'default'}/events"
        try:
            events = self._get(api, events_path, [
                ("fieldSelector", f"involvedObject.name={name},involvedObject.kind={k.kind}"),
                ("limit", MAX_ITEMS)]).get("items", [])  # fmt: skip
        except ApiException:
            events = []
        return (
            describe(k.kind, obj)
            + "\nEvents:\n"
            + ("\n".join(event_line(e) for e in _by_time(events)[-15:]) or "  <none>")
        )

    def _list_events(self, api: ApiClient, args: Obj) -> str:
        ns = self._ns(args.get("namespace"))
        items = self._get(api, f"/api/v1/namespaces/{ns}/events", [("limit", 200)]).get("items", [])
        if not items:
            return f"No events in {ns}."
        return f"Events in {ns} (newest last):\n" + "\n".join(
            event_line(e, with_object=True) for e in _by_time(items)[-30:]
        )

    def _pod_logs(self, api: ApiClient, args: Obj) -> str:
        ns = self._ns(args.get("namespace"))
        name = self._name(args.get("name"))
        tail = max(1, min(int(args.get("tail_lines") or 50), 200))
        query: list[tuple[str, Any]] = [("tailLines", tail), ("limitBytes", MAX_LOG_BYTES)]
        if container := args.get("container"):
            query.append(("container", self._name(container)))
        text = self._get(api, f"/api/v1/namespaces/{ns}/pods/{name}/log", query, raw=True)
        text = text[-MAX_LOG_BYTES:]
        return f"Last {tail} lines of {ns}/{name}:\n{text or '<empty log>'}"


# --- formatting (kubectl-like, compact) ----------------------------------------------------


def _age(stamp: str | None) -> str:
    if not stamp:
        return "?"
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    secs = max(0, int((datetime.now(UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _by_time(events: list[Obj]) -> list[Obj]:
    return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime")
                  or e.get("metadata", {}).get("creationTimestamp") or "")  # fmt: skip


def _cond(obj: Obj, type_: str) -> str:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return "?"


def _pod_status(pod: Obj) -> tuple[str, str, int]:
    st = pod.get("status", {})
    cs = st.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    reason = st.get("phase", "?")
    for c in cs:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
            break
        if "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    total = len(pod.get("spec", {}).get("containers") or cs)
    return f"{ready}/{total}", reason, restarts


def row(kind: str, obj: Obj) -> str:
    """One ``kubectl get``-style line."""
    meta = obj.get("metadata", {})
    name = meta.get("name", "?")
    if meta.get("namespace"):
        name = f"{meta['namespace']}/{name}"
    spec, st = obj.get("spec", {}) or {}, obj.get("status", {}) or {}
    age = _age(meta.get("creationTimestamp"))
    if kind == "Pod":
        ready, reason, restarts = _pod_status(obj)
        return f"{name} ready={ready} status={reason} restarts={restarts} node={spec.get('nodeName', '-')} age={age}"
    if kind == "Node":
        return f"{name} Ready={_cond(obj, 'Ready')} age={age}"
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return (f"{name} ready={st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}"
                f" updated={st.get('updatedReplicas', 0)} available={st.get('availableReplicas', 0)} age={age}")  # fmt: skip
    if kind == "Service":
        ports = ",".join(
            f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []
        )
        return f"{name} type={spec.get('type', 'ClusterIP')} clusterIP={spec.get('clusterIP', '-')} ports={ports or '-'} selector={spec.get('selector') or {}}"
    if kind == "PersistentVolumeClaim":
        return (f"{name} status={st.get('phase', '?')} volume={spec.get('volumeName', '-')}"
                f" class={spec.get('storageClassName', '-')} capacity={(st.get('capacity') or {}).get('storage', '-')}")  # fmt: skip
    if kind == "PersistentVolume":
        return f"{name} status={st.get('phase', '?')} capacity={(spec.get('capacity') or {}).get('storage', '-')} claim={(spec.get('claimRef') or {}).get('name', '-')}"
    if kind == "Event":
        return event_line(obj, with_object=True)
    if kind == "Namespace":
        return f"{name} status={st.get('phase', '?')} age={age}"
    if kind == "HorizontalPodAutoscaler":
        return f"{name} min={spec.get('minReplicas', 1)} max={spec.get('maxReplicas', '?')} current={st.get('currentReplicas', '?')}"
    return f"{name} age={age}"


def event_line(e: Obj, with_object: bool = False) -> str:
    obj = e.get("involvedObject", {})
    what = f" {obj.get('kind', '?')}/{obj.get('name', '?')}" if with_object else ""
    count = f" (x{e['count']})" if (e.get("count") or 1) > 1 else ""
    return (f"  {_age(e.get('lastTimestamp') or e.get('eventTime'))} {e.get('type', '')}"
            f" {e.get('reason', '')}{what}: {e.get('message', '')}{count}")  # fmt: skip


def describe(kind: str, obj: Obj) -> str:
    """The parts of ``kubectl describe`` that matter when something is wrong."""
    meta = obj.get("metadata", {})
    spec, st = obj.get("spec", {}) or {}, obj.get("status", {}) or {}
    lines = [f"{kind}: {meta.get('namespace', '')}/{meta.get('name', '?')}".replace(": /", ": "),
             f"Labels: {meta.get('labels') or {}}", row(kind, obj)]  # fmt: skip
    for c in st.get("conditions") or []:
        msg = f" — {c['message']}" if c.get("message") else ""
        lines.append(f"Condition {c.get('type')}={c.get('status')} {c.get('reason') or ''}{msg}")
    if kind == "Pod":
        statuses = {c.get("name"): c for c in st.get("containerStatuses") or []}
        for c in spec.get("containers") or []:
            s = statuses.get(c.get("name"), {})
            state = next(iter((s.get("state") or {}).items()), ("unknown", {}))
            detail = state[1].get("reason") or ""
            if state[1].get("message"):
                detail += f": {state[1]['message']}"
            lines.append(f"Container {c.get('name')} image={c.get('image')} state={state[0]}"
                         f" {detail} restarts={s.get('restartCount', 0)}".rstrip())  # fmt: skip
            if c.get("resources"):
                lines.append(f"  resources={c['resources']}")
            if c.get("env"):
                lines.append(f"  env={c['env']}")
    elif kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
        tpl = (spec.get("template") or {}).get("spec", {})
        lines.append(f"Selector: {spec.get('selector')}")
        for c in tpl.get("containers") or []:
            lines.append(f"Container {c.get('name')} image={c.get('image')} env={c.get('env') or []}"
                         f" resources={c.get('resources') or {}}")  # fmt: skip
    elif kind not in ("Node", "Namespace"):
        lines.append(f"Spec: {json.dumps(spec, separators=(',', ':'))[:1500]}")
    return "\n".join(lines)
