"""A small in-process Kubernetes API server for tests and benchmarks.

One :class:`KubeEmulator` is one ``ThreadingHTTPServer`` on ``127.0.0.1`` (ephemeral port) in a
background thread, serving any number of logical clusters. Cluster ``name`` lives under the
URL prefix ``/clusters/<name>``; paths without a prefix go to the cluster ``default``. The
official client keeps the prefix (it builds ``configuration.host + resource_path``), and so
does kubectl (``server:`` with a path).

It speaks enough of the API for the client, ``kubectl get`` and ``kubernetes.watch.Watch``:
discovery, LIST/GET/POST/PUT/PATCH/DELETE on the kinds in :data:`KINDS`, label and field
selectors, watches, ``/status`` and ``/scale`` subresources, and ``Status`` errors. There are
no controllers: objects change only when a client or the test changes them.

A :class:`Extension` set on a cluster (``Cluster.extension``) adds behaviour without changing
the plain emulator: extra routes (OpenAPI), admission (defaults, validation), strategic merge
and server-side apply, and content negotiation (``as=Table``). ``tests/simcluster`` uses it,
with controllers, to behave like a one-node kind cluster under real kubectl.

Per cluster, tests can inject faults (:meth:`Cluster.fail`, :meth:`Cluster.delay`,
:attr:`Cluster.unreachable`) and read the request log (:attr:`Cluster.requests`).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import yaml
from kubernetes import client

if TYPE_CHECKING:
    from tests.emulator.aioserver import AsyncFront

from sandbox.kinds import KINDS as REGISTRY
from sandbox.kinds import Kind

Obj = dict[str, Any]


# --- kinds ---------------------------------------------------------------------------------


# The product's one kind registry; the emulator serves all of it but the workload
# controllers' kinds it has no behaviour for.
KindInfo = Kind
_NOT_SERVED = frozenset({"DaemonSet", "Job", "CronJob", "PodDisruptionBudget"})
KINDS: tuple[KindInfo, ...] = tuple(k for k in REGISTRY if k.kind not in _NOT_SERVED)
BY_KIND: dict[str, KindInfo] = {k.kind: k for k in KINDS}
BY_GV_PLURAL: dict[tuple[str, str], KindInfo] = {(k.group_version, k.plural): k for k in KINDS}
# Kinds whose spec changes bump metadata.generation (those without a spec never do).
_NO_STATUS_SUBRESOURCE = {"ConfigMap", "Secret", "ServiceAccount", "Endpoints", "EndpointSlice",
                          "Event", "StorageClass", "Role", "RoleBinding", "ClusterRole",
                          "ClusterRoleBinding", "LimitRange", "NetworkPolicy"}
# Kinds in the "all" category (``kubectl get all``), as the API server lists them.
_CATEGORY_ALL = {"Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet",
                 "HorizontalPodAutoscaler"}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


# dates, dataclasses and str/int/dict subclasses are not JSON's: they raise, and deepcopy them
_AS_IS = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
          | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _copy(obj: Any) -> Any:
    """A deep copy of a JSON object (what the store holds): through orjson, 5-10x faster than
    ``copy.deepcopy``, which was a sixth of the load bench's emulator CPU at 3,000 learners.
    Anything JSON cannot carry (a YAML date, a non-string key) takes ``deepcopy``."""
    try:
        return orjson.loads(orjson.dumps(obj, option=_AS_IS))
    except TypeError:
        return copy.deepcopy(obj)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- errors --------------------------------------------------------------------------------

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
            422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


def status_object(code: int, message: str, reason: str | None = None,
                  details: Obj | None = None) -> Obj:
    """A ``Status`` as the API server returns it for failures."""
    out: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason or _REASONS.get(code, "Unknown"),
                "code": code}
    if details:
        out["details"] = details
    return out


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: Obj | None = None):
        super().__init__(message)
        self.status = status_object(code, message, reason, details)
        self.code = code


def _not_found(info: KindInfo, name: str) -> ApiError:
    res = f"{info.plural}.{info.group}" if info.group else info.plural
    return ApiError(404, f'{res} "{name}" not found', "NotFound",
                    {"name": name, "group": info.group, "kind": info.plural})


# --- selectors -----------------------------------------------------------------------------


def _split_top(s: str) -> list[str]:
    """Split on commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out if p.strip()]


_SET_RE = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")


def parse_label_selector(selector: str) -> Callable[[dict[str, str]], bool]:
    """Compile ``a=b,c!=d,e in (x,y),f notin (z),g,!h`` into a predicate over labels."""
    tests: list[Callable[[dict[str, str]], bool]] = []
    for part in _split_top(selector):
        if m := _SET_RE.match(part):
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda ls, k=key, v=vals: ls.get(k) in v)
            else:
                tests.append(lambda ls, k=key, v=vals: ls.get(k) not in v)
        elif "!=" in part:
            key, val = (x.strip() for x in part.split("!=", 1))
            tests.append(lambda ls, k=key, v=val: ls.get(k) != v)
        elif "=" in part:
            key, val = (x.strip() for x in part.replace("==", "=").split("=", 1))
            tests.append(lambda ls, k=key, v=val: ls.get(k) == v)
        elif part.startswith("!"):
            absent = part[1:].strip()
            tests.append(lambda ls, k=absent: k not in ls)
        elif re.fullmatch(r"[\w./-]+", part):
            tests.append(lambda ls, k=part: k in ls)
        else:
            raise ApiError(400, f"unable to parse requirement: {part!r}")
    return lambda labels: all(t(labels) for t in tests)


def _dig(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def parse_field_selector(selector: str) -> Callable[[Obj], bool]:
    """``metadata.name=x,status.phase!=Running`` (any dotted path; missing compares as "")."""
    tests: list[Callable[[Obj], bool]] = []
    for part in _split_top(selector):
        neg = "!=" in part
        key, val = (x.strip() for x in re.split(r"!=|==|=", part, maxsplit=1))
        if neg:
            tests.append(lambda o, k=key, v=val: str(_dig(o, k) or "") != v)
        else:
            tests.append(lambda o, k=key, v=val: str(_dig(o, k) or "") == v)
    return lambda o: all(t(o) for t in tests)


# --- patches -------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used to approximate strategic merge and apply)."""
    if not isinstance(patch, dict):
        return _copy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    doc = _copy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        try:
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op["value"])
                elif kind == "remove":
                    parent.pop(idx)
                elif kind == "replace":
                    parent[idx] = op["value"]
                elif kind == "test" and parent[idx] != op["value"]:
                    raise ApiError(422, f"test failed at {op['path']}")
            elif kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise ApiError(422, f"replace: missing path {op['path']}")
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            elif kind == "test" and parent.get(last) != op["value"]:
                raise ApiError(422, f"test failed at {op['path']}")
        except (KeyError, IndexError, ValueError) as exc:
            raise ApiError(422, f"json patch {kind} {op['path']}: {exc}") from None
    return doc


# --- clusters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as the cluster saw it (path without the ``/clusters/<name>`` prefix)."""

    method: str
    path: str
    query: dict[str, str]
    at: float


@dataclass
class Fault:
    status: int
    method: str | None = None
    path: str | None = None  # regex, searched in the path
    times: int | None = None  # None: always
    message: str = "injected fault"

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or re.search(self.path, path) is not None)


@dataclass
class Delay:
    seconds: float
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or re.search(self.path, path) is not None)


class Extension:
    """Hooks for a richer simulator on one cluster; every default keeps the emulator's own
    behaviour, so a cluster without an extension answers exactly as before."""

    def route(self, method: str, path: str, query: dict[str, str],
              headers: Any) -> tuple[int, Any, str] | None:
        """Answer a path the emulator does not serve: ``(code, body, content type)``; body is
        a dict (sent as JSON) or bytes. ``None``: not mine."""
        return None

    def admit(self, info: KindInfo, obj: Obj, old: Obj | None, query: dict[str, str],
              subresource: str = "") -> Obj:
        """Defaults and validation of a client's write (create, update, patch); raise
        :class:`ApiError` to refuse it."""
        return obj

    def patch(self, info: KindInfo, base: Obj, patch: Any, content_type: str,
              query: dict[str, str]) -> Obj | None:
        """The patched object for strategic merge and apply patches; ``None``: the emulator's
        JSON merge approximation."""
        return None

    def render(self, accept: str, query: dict[str, str], body: Obj) -> Obj:
        """The response body in the representation the client asked for (e.g. a Table)."""
        return body

    def applied(self, info: KindInfo, obj: Obj, manager: str) -> None:
        """A server-side apply by ``manager`` was stored as ``obj``."""

    def groups(self) -> dict[str, list[str]]:
        """API groups served by :meth:`route` (aggregated APIs), listed in discovery."""
        return {}

    def decode(self, body: bytes, content_type: str) -> Obj | None:
        """A request body in an encoding the emulator does not read (protobuf); ``None``:
        not supported (415)."""
        return None


@dataclass
class _Event:
    rv: int
    type: str
    kind: str
    obj: Obj


class Cluster:
    """One logical cluster: its objects, resourceVersion counter, faults and request log."""

    HISTORY = 20_000  # watch events kept; older resourceVersions get 410 Expired

    def __init__(self, name: str, token: str):
        self.name = name
        self.token = token
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._rv = 0
        self._store: dict[str, dict[tuple[str, str], Obj]] = {k.kind: {} for k in KINDS}
        self._history: list[_Event] = []
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.delays: list[Delay] = []
        self.unreachable = False
        self.extension: Extension | None = None
        # called (under the lock) after every change: the asyncio front's watch wake-ups
        self.listeners: list[Callable[[], object]] = []

    # -- test-side API --

    def fail(self, status: int, method: str | None = None, path: str | None = None,
             times: int | None = 1, message: str = "injected fault") -> Fault:
        """Answer matching requests with ``status`` ``times`` times (``None``: always)."""
        f = Fault(status, method, path, times, message)
        with self.lock:
            self.faults.append(f)
        return f

    def delay(self, seconds: float, method: str | None = None, path: str | None = None) -> Delay:
        """Sleep ``seconds`` before answering matching requests (until :meth:`clear_faults`)."""
        d = Delay(seconds, method, path)
        with self.lock:
            self.delays.append(d)
        return d

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.delays.clear()
            self.unreachable = False

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def count(self, method: str | None = None, path: str | None = None,
              watch: bool | None = None) -> int:
        """Requests logged matching ``method``, exact ``path`` and watch-ness."""
        with self.lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method)
                       and (path is None or r.path == path)
                       and (watch is None or (r.query.get("watch") in ("true", "1")) == watch))

    @property
    def resource_version(self) -> int:
        return self._rv

    def put(self, *objs: Obj) -> list[Obj]:
        """Create or replace objects as given (status included), filling server metadata."""
        return [self._store_obj(_copy(o), keep_status=False) for o in objs]

    def get(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        with self.lock:
            o = self._store[kind].get((namespace, name))
            return _copy(o) if o else None

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        with self.lock:
            return [_copy(o) for (ns, _), o in sorted(self._store[kind].items())
                    if namespace is None or ns == namespace]

    def remove(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        with self.lock:
            old = self._store[kind].pop((namespace, name), None)
            if old is not None:
                self._record("DELETED", kind, self._bump(old))
            return old

    # -- internals --

    def _bump(self, obj: Obj) -> Obj:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        return obj

    def _record(self, type_: str, kind: str, obj: Obj) -> None:
        self._history.append(_Event(self._rv, type_, kind, _copy(obj)))
        if len(self._history) > self.HISTORY:
            del self._history[: len(self._history) - self.HISTORY]
        self.changed.notify_all()
        for listener in tuple(self.listeners):
            listener()

    def _store_obj(self, obj: Obj, keep_status: bool, subresource: str = "") -> Obj:
        info = BY_KIND[obj["kind"]]
        obj.setdefault("apiVersion", info.group_version)
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if info.namespaced else ""
        if not info.namespaced:
            meta.pop("namespace", None)
        name = meta["name"]
        with self.lock:
            old = self._store[info.kind].get((ns, name))
            if old is not None:
                meta["uid"] = old["metadata"]["uid"]
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
                gen = old["metadata"].get("generation")
                if subresource == "status":
                    obj = {**old, "status": obj.get("status", {})}
                    obj["metadata"] = _copy(old["metadata"])
                    meta = obj["metadata"]
                elif keep_status and "status" in old and info.kind not in _NO_STATUS_SUBRESOURCE:
                    obj["status"] = old["status"]
                if gen is not None:
                    if subresource != "status" and obj.get("spec") != old.get("spec"):
                        gen += 1
                    meta["generation"] = gen
            else:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now_iso())
                if "spec" in obj or info.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
                    meta.setdefault("generation", 1)
                if info.kind == "Namespace":
                    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
                    obj.setdefault("spec", {"finalizers": ["kubernetes"]})
                    obj.setdefault("status", {"phase": "Active"})
            self._bump(obj)
            self._store[info.kind][(ns, name)] = obj
            self._record("MODIFIED" if old is not None else "ADDED", info.kind, obj)
            return _copy(obj)

    def events_since(self, kind: str, rv: int) -> list[_Event] | None:
        """Events for ``kind`` after ``rv``; ``None`` if ``rv`` is older than the history."""
        if self._history and rv < self._history[0].rv - 1 and rv < self._rv:
            return None
        return [e for e in self._history if e.rv > rv and e.kind == kind]


# --- HTTP ----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    emulator: KubeEmulator
    tls: ssl.SSLContext | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeouts in tests) is not an error worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in accept().
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway CA-less certificate for 127.0.0.1 (kubectl sends tokens only over TLS)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-emulator")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "emulator.crt", directory / "emulator.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per response

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing --

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _drop(self) -> None:
        """Close the connection without answering (an unreachable cluster)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self, method: str) -> None:
        body = self._read_body()  # all of it, whatever the answer: the connection is reused
        admitted = admit(self.server.emulator, method, self.path, self.headers)
        if admitted is None:
            self._drop()
            return
        if isinstance(admitted, Reply):
            self._reply(admitted)
            return
        cluster, path, query, delay = admitted
        if delay:
            time.sleep(delay)
        outcome = answer(cluster, method, path, query, self.headers, body)
        if isinstance(outcome, Reply):
            self._reply(outcome)
        else:
            self._watch(outcome)

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.code)
        for name, value in reply.headers():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _watch(self, call: WatchCall) -> None:
        """Stream a watch from this connection's thread, waiting on the cluster's condition."""
        emu, c = self.server.emulator, call.cluster
        feed = WatchFeed(emu, call)
        try:
            self.start_stream()
            lines, over = feed.start()
            for line in lines:
                self.write_chunk(line)
            if not over:
                while not emu.stopping:
                    with c.lock:
                        if not feed.pending():
                            left = feed.left()
                            if left <= 0:
                                break
                            c.changed.wait(min(left, emu.bookmark_interval, 0.5))
                    for line in feed.take():
                        self.write_chunk(line)
                    if feed.left() <= 0:
                        break
                for line in feed.closing():
                    self.write_chunk(line)
            # The connection stays open for the next request, as kube-apiserver's does
            # (Go's HTTP/1.1 server keeps a connection whose chunked answer ended).
            self.end_stream()
        except OSError:  # the client went away mid-answer
            self.close_connection = True

    # chunked streaming for watches
    def start_stream(self) -> None:
        self.send_response(200)
        for name, value in WATCH_HEADERS:
            self.send_header(name, value)
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# --- answering a request (both fronts) -------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A whole answer."""

    code: int
    body: bytes
    content_type: str = "application/json"

    def headers(self) -> list[tuple[str, str]]:
        head = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body)))]
        if self.content_type == "application/json":
            head.append(("Cache-Control", "no-cache, private"))
        return head


# a watch's answer: JSON lines, chunked, for as long as the watch lasts
WATCH_HEADERS = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"),
                 ("Cache-Control", "no-cache, private")]


def _json_reply(code: int, body: Obj) -> Reply:
    return Reply(code, json.dumps(body, separators=(",", ":")).encode())


@dataclass(frozen=True)
class WatchCall:
    """A watch request past auth and faults; each front streams it its own way."""

    cluster: Cluster
    info: KindInfo
    namespace: str | None
    query: dict[str, str]


class Headers(Protocol):
    """A request's headers as both fronts have them (``email.message.Message``, a dict)."""

    def get(self, name: str, default: None = None, /) -> str | None: ...


def admit(emu: KubeEmulator, method: str, target: str, headers: Headers
          ) -> Reply | tuple[Cluster, str, dict[str, str], float] | None:
    """Log the request and apply the cluster's faults and auth: a :class:`Reply` (404, 401,
    an injected fault), ``None`` to drop the connection (unreachable), or the cluster, path,
    query and the delay to wait before :func:`answer`."""
    split = urlsplit(target)
    path = unquote(split.path).rstrip("/") or "/"
    query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    name = "default"
    if m := re.match(r"^/clusters/([^/]+)(/.*)?$", path):
        name, path = m.group(1), m.group(2) or "/"
    cluster = emu.clusters.get(name)
    if cluster is None:
        return _json_reply(404, status_object(404, f"no cluster {name!r}"))
    with cluster.lock:
        cluster.requests.append(Request(method, path, query, time.monotonic()))
        unreachable = cluster.unreachable
        delay = sum(d.seconds for d in cluster.delays if d.matches(method, path))
        fault = next((f for f in cluster.faults if f.matches(method, path)), None)
        if fault is not None and fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                cluster.faults.remove(fault)
    if unreachable:
        return None
    auth = headers.get("Authorization") or ""
    public = path in ("/version", "/healthz", "/livez", "/readyz") and not auth
    if not public and not secrets.compare_digest(auth, f"Bearer {cluster.token}"):
        return _json_reply(401, status_object(401, "Unauthorized"))
    if fault is not None:
        return _json_reply(fault.status, status_object(fault.status, fault.message))
    return cluster, path, query, delay


def answer(cluster: Cluster, method: str, path: str, query: dict[str, str], headers: Headers,
           body: bytes) -> Reply | WatchCall:
    """The answer to an admitted request, or the watch to stream."""
    try:
        ext = cluster.extension
        if ext is not None:
            routed = ext.route(method, path, query, headers)
            if routed is not None:
                code, content, content_type = routed
                if isinstance(content, dict):
                    return _json_reply(code, content)
                data = content if isinstance(content, bytes) else str(content).encode()
                return Reply(code, data, content_type)
        result = _Api(cluster).handle(method, path, query, body,
                                      headers.get("Content-Type") or "application/json")
        if isinstance(result, WatchCall):
            return result
        if ext is not None:
            result = (result[0], ext.render(headers.get("Accept") or "", query, result[1]))
        return _json_reply(*result)
    except ApiError as exc:
        return _json_reply(exc.code, exc.status)
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        return _json_reply(400, status_object(400, f"bad request: {exc}"))


def _line(type_: str, obj: Obj) -> bytes:
    return json.dumps({"type": type_, "object": obj}).encode() + b"\n"


def _selected(query: dict[str, str]) -> Callable[[Obj], bool]:
    lab = parse_label_selector(query.get("labelSelector", ""))
    fld = parse_field_selector(query.get("fieldSelector", ""))
    return lambda o: lab(o.get("metadata", {}).get("labels") or {}) and fld(o)


class WatchFeed:
    """One watch's place in its cluster's history: the lines to send next. The fronts differ
    only in how they wait between looks (a condition, or the loop)."""

    def __init__(self, emu: KubeEmulator, call: WatchCall) -> None:
        self.c, self.kind, self.namespace = call.cluster, call.info.kind, call.namespace
        self.group_version = call.info.group_version
        query = call.query
        self.keep = _selected(query)
        self.deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        self.bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        self.rv_param = query.get("resourceVersion", "")
        self.interval = emu.bookmark_interval
        self.last = 0
        self.last_bookmark = time.monotonic()

    def start(self) -> tuple[list[bytes], bool]:
        """The first lines (every object, ADDED, when no resourceVersion was given), and
        whether the watch ends with them (410: the version is older than the history)."""
        with self.c.lock:
            if self.rv_param in ("", "0"):
                self.last = self.c.resource_version
                initial = [o for o in self.c.list(self.kind, self.namespace) if self.keep(o)]
            else:
                self.last, initial = int(self.rv_param), []
                if self.c.events_since(self.kind, self.last) is None:
                    return [_line("ERROR", status_object(
                        410, f"too old resource version: {self.last} "
                        f"({self.c._history[0].rv})", "Expired"))], True
        self.last_bookmark = time.monotonic()
        return [_line("ADDED", o) for o in initial], False

    def pending(self) -> bool:
        """Something happened to this kind since the last look."""
        with self.c.lock:
            return bool(self.c.events_since(self.kind, self.last))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def take(self) -> list[bytes]:
        """Lines for what changed since the last look, and a bookmark when one is due."""
        with self.c.lock:
            events: list[_Event] = self.c.events_since(self.kind, self.last) or []
            if not events:
                self.last = max(self.last, self.c.resource_version)
        out: list[bytes] = []
        for e in events:
            self.last = e.rv
            if self._in_scope(e.obj):  # simplification: leaving a selector is not reported
                out.append(_line(e.type, e.obj))
        if self.bookmarks and time.monotonic() - self.last_bookmark >= self.interval:
            out.append(self._bookmark())
            self.last_bookmark = time.monotonic()
        return out

    def closing(self) -> list[bytes]:
        """The last lines: a bookmark with the version reached, when bookmarks are asked."""
        return [self._bookmark()] if self.bookmarks else []

    def _in_scope(self, o: Obj) -> bool:
        return (self.namespace is None
                or o["metadata"].get("namespace") == self.namespace) and self.keep(o)

    def _bookmark(self) -> bytes:
        return _line("BOOKMARK", {"kind": self.kind, "apiVersion": self.group_version,
                                  "metadata": {"resourceVersion": str(self.last)}})


def _discovery_resources(gv: str) -> list[Obj]:
    out = []
    for k in KINDS:
        if k.group_version != gv:
            continue
        out.append({"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
                    "kind": k.kind, "verbs": _VERBS, "shortNames": list(k.short_names)})
        if k.kind in _CATEGORY_ALL:
            out[-1]["categories"] = ["all"]
        if k.kind not in _NO_STATUS_SUBRESOURCE:
            out.append({"name": f"{k.plural}/status", "singularName": "", "namespaced":
                        k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]})
        if k.scale:
            out.append({"name": f"{k.plural}/scale", "singularName": "", "namespaced":
                        k.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale",
                        "verbs": ["get", "patch", "update"]})
    return out


def _groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for k in KINDS:
        if k.group and k.version not in groups.setdefault(k.group, []):
            groups[k.group].append(k.version)
    return groups


_GROUPS = _groups()


class _Api:
    """Request handling for one cluster (everything after auth and faults)."""

    def __init__(self, cluster: Cluster):
        self.c = cluster

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes,
               content_type: str) -> tuple[int, Obj] | WatchCall:
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kepler-emulator",
                         "gitCommit": "0" * 40, "gitTreeState": "clean",
                         "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
                         "compiler": "gc", "platform": "linux/amd64"}
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, {"status": "ok"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                         [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        groups = _GROUPS
        if self.c.extension is not None and parts[:1] == ["apis"] and len(parts) <= 2:
            groups = {**_GROUPS, **self.c.extension.groups()}
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in groups.items()]}
        if parts[:1] == ["api"] and len(parts) >= 2:
            gv, rest = parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) == 2 and parts[1] in groups:
            vs = groups[parts[1]]
            return 200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1], "versions": [
                {"groupVersion": f"{parts[1]}/{v}", "version": v} for v in vs],
                "preferredVersion": {"groupVersion": f"{parts[1]}/{vs[0]}", "version": vs[0]}}
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        if not rest:
            resources = _discovery_resources(gv)
            if not resources:
                raise ApiError(404, f"the server could not find the requested resource ({path})")
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                         "resources": resources}
        namespace: str | None = None
        if (rest[0] == "namespaces" and len(rest) >= 3
                and (gv, rest[2]) in BY_GV_PLURAL and BY_GV_PLURAL[(gv, rest[2])].namespaced):
            namespace, rest = rest[1], rest[2:]
        info = BY_GV_PLURAL.get((gv, rest[0]))
        if info is None or len(rest) > 3 or ((namespace is not None) != info.namespaced and (
                len(rest) > 1 or namespace is not None)):
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if sub not in ("", "status") and not (sub == "scale" and info.scale):
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        ns = namespace or ""
        if name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1"):
                    return WatchCall(self.c, info, namespace, query)
                return 200, self._list(info, namespace, query)
            if method == "POST":
                return 201, self._create(info, ns, self._parse(body, content_type), query)
            if method == "DELETE":
                return 200, self._delete_collection(info, namespace, query)
            raise ApiError(405, f"method {method} not allowed")
        if method == "GET":
            obj = self._get(info, ns, name)
            return 200, (self._scale(obj) if sub == "scale" else obj)
        if method == "PUT":
            return 200, self._update(info, ns, name, sub, self._parse(body, content_type))
        if method == "PATCH":
            return 200, self._patch(info, ns, name, sub, body, content_type, query)
        if method == "DELETE":
            return 200, self._delete(info, ns, name)
        raise ApiError(405, f"method {method} not allowed")

    def _parse(self, body: bytes, content_type: str) -> Any:
        if not body:
            raise ApiError(400, "request body required")
        if content_type.startswith("application/vnd.kubernetes.protobuf"):
            decoded = (self.c.extension.decode(body, content_type)
                       if self.c.extension is not None else None)
            if decoded is None:
                raise ApiError(415, 'the body of the request was in an unknown format - '
                               'accepted media types include: application/json, '
                               'application/yaml', "UnsupportedMediaType")
            return decoded
        if "yaml" in content_type:
            return yaml.safe_load(body)
        return json.loads(body)

    def _get(self, info: KindInfo, ns: str, name: str) -> Obj:
        obj = self.c.get(info.kind, name, ns)
        if obj is None:
            raise _not_found(info, name)
        return obj

    def _list(self, info: KindInfo, namespace: str | None, query: dict[str, str]) -> Obj:
        keep = _selected(query)
        with self.c.lock:
            items = [o for o in self.c.list(info.kind, namespace) if keep(o)]
            rv = str(self.c.resource_version)
        limit = int(query.get("limit") or 0)
        start = int(query.get("continue") or 0)
        meta: Obj = {"resourceVersion": rv}
        if limit:
            page = items[start:start + limit]
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = page
        for o in items:
            o.setdefault("apiVersion", info.group_version)
            o.setdefault("kind", info.kind)
        return {"kind": f"{info.kind}List", "apiVersion": info.group_version,
                "metadata": meta, "items": items}

    def _check_namespace(self, info: KindInfo, ns: str) -> None:
        if info.namespaced and self.c.get("Namespace", ns) is None:
            raise ApiError(404, f'namespaces "{ns}" not found', "NotFound",
                           {"name": ns, "kind": "namespaces"})

    def _create(self, info: KindInfo, ns: str, obj: Obj, query: dict[str, str]) -> Obj:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise ApiError(422, f"{info.kind} is invalid: metadata.name: Required value")
        if info.namespaced:
            if meta.get("namespace") not in (None, ns):
                raise ApiError(400, "the namespace of the provided object does not match "
                               "the namespace sent on the request")
            meta["namespace"] = ns
            self._check_namespace(info, ns)
        obj["kind"], obj["apiVersion"] = info.kind, info.group_version
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
            meta.pop(key, None)
        with self.c.lock:
            if self.c.extension is not None:
                obj = self.c.extension.admit(info, obj, None, query)
                meta = obj["metadata"]
            if self.c.get(info.kind, meta["name"], ns) is not None:
                res = f"{info.plural}.{info.group}" if info.group else info.plural
                raise ApiError(409, f'{res} "{meta["name"]}" already exists', "AlreadyExists",
                               {"name": meta["name"], "group": info.group, "kind": info.plural})
            if query.get("dryRun"):
                return obj
            return self.c._store_obj(obj, keep_status=False)

    def _update(self, info: KindInfo, ns: str, name: str, sub: str, obj: Obj) -> Obj:
        with self.c.lock:
            old = self._get(info, ns, name)
            if sub == "scale":
                return self._scale(self._set_replicas(info, old, obj))
            rv = obj.get("metadata", {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, f'Operation cannot be fulfilled on {info.plural} "{name}": '
                               "the object has been modified; please apply your changes to the "
                               "latest version and try again", "Conflict")
            obj["kind"], obj["apiVersion"] = info.kind, info.group_version
            obj.setdefault("metadata", {})["name"] = name
            if info.namespaced:
                obj["metadata"]["namespace"] = ns
            if self.c.extension is not None:
                obj = self.c.extension.admit(info, obj, old, {}, sub)
            return self.c._store_obj(obj, keep_status=True, subresource=sub)

    def _set_replicas(self, info: KindInfo, old: Obj, scale: Obj) -> Obj:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Scale.spec.replicas: Invalid value")
        old.setdefault("spec", {})["replicas"] = replicas
        return self.c._store_obj(old, keep_status=True)

    def _scale(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        sel = (obj.get("spec") or {}).get("selector", {}).get("matchLabels", {})
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in sel.items())}}

    def _patch(self, info: KindInfo, ns: str, name: str, sub: str, body: bytes,
               content_type: str, query: dict[str, str]) -> Obj:
        ctype = content_type.split(";")[0].strip()
        patch = self._parse(body, ctype)
        with self.c.lock:
            current = self.c.get(info.kind, name, ns)
            if ctype == "application/apply-patch+yaml":
                manager = query.get("fieldManager")
                if not manager:
                    raise ApiError(400, "PATCH requests with apply-patch+yaml need fieldManager")
                if current is None:
                    if sub:
                        raise _not_found(info, name)
                    patch.setdefault("metadata", {})["name"] = name
                    if self.c.extension is not None:
                        patch = self.c.extension.patch(info, {}, patch, ctype, query) or patch
                    obj = self._create(info, ns, patch, query)
                    if query.get("dryRun"):
                        return obj
                    return self._managed(info, obj, manager)
            elif current is None:
                raise _not_found(info, name)
            base: Obj = self._scale(current) if sub == "scale" else current
            if ctype == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise ApiError(400, "json patch must be a list of operations")
                new = json_patch(base, patch)
            elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                           "application/apply-patch+yaml"):
                if not isinstance(patch, dict):
                    raise ApiError(400, "patch must be an object")
                ext = self.c.extension
                patched = (ext.patch(info, base, patch, ctype, query)
                           if ext is not None and ctype != "application/merge-patch+json"
                           else None)
                new = merge_patch(base, patch) if patched is None else patched
            else:
                raise ApiError(415, f"unsupported patch content type {ctype!r}")
            if sub == "scale":
                return self._scale(self._set_replicas(info, current, new))
            new["metadata"]["name"] = name
            if info.namespaced:
                new["metadata"]["namespace"] = ns
            if self.c.extension is not None:
                new = self.c.extension.admit(info, new, current, query, sub)
            if query.get("dryRun"):
                return new
            obj = self.c._store_obj(new, keep_status=sub != "status" and "status" not in patch
                                    if isinstance(patch, dict) else True, subresource=sub)
            if ctype == "application/apply-patch+yaml":
                return self._managed(info, obj, str(query.get("fieldManager")))
            return obj

    def _managed(self, info: KindInfo, obj: Obj, manager: str) -> Obj:
        """Record an Apply entry in managedFields (fieldsV1 left empty: not tracked)."""
        ns = obj["metadata"].get("namespace", "")
        stored = self.c._store[info.kind][(ns, obj["metadata"]["name"])]
        entries = [e for e in stored["metadata"].get("managedFields", [])
                   if e.get("manager") != manager]
        entries.append({"manager": manager, "operation": "Apply",
                        "apiVersion": info.group_version, "time": now_iso(),
                        "fieldsType": "FieldsV1", "fieldsV1": {}})
        stored["metadata"]["managedFields"] = entries
        if self.c.extension is not None:
            self.c.extension.applied(info, stored, manager)
        return _copy(stored)

    def _delete(self, info: KindInfo, ns: str, name: str) -> Obj:
        with self.c.lock:
            old = self.c.remove(info.kind, name, ns)
            if old is None:
                raise _not_found(info, name)
            if info.kind == "Namespace":
                for k in KINDS:
                    if k.namespaced:
                        for o in self.c.list(k.kind, name):
                            self.c.remove(k.kind, o["metadata"]["name"], name)
        if info.kind == "Pod":
            return old
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": info.group, "kind": info.plural,
                            "uid": old["metadata"]["uid"]}}

    def _delete_collection(self, info: KindInfo, namespace: str | None,
                           query: dict[str, str]) -> Obj:
        keep = _selected(query)
        with self.c.lock:
            gone = [o for o in self.c.list(info.kind, namespace) if keep(o)]
            for o in gone:
                self.c.remove(info.kind, o["metadata"]["name"], o["metadata"].get("namespace", ""))
            rv = str(self.c.resource_version)
        return {"kind": f"{info.kind}List", "apiVersion": info.group_version,
                "metadata": {"resourceVersion": rv}, "items": gone}


# --- the emulator --------------------------------------------------------------------------


class KubeEmulator:
    """Many logical Kubernetes clusters on one local HTTP server in a background thread.

    >>> with KubeEmulator() as emu:
    ...     emu.add_cluster("alice")
    ...     cfg = emu.configuration("alice")
    """

    def __init__(self, bookmark_interval: float = 60.0, io: str = "threads",
                 http2: bool = True):
        """``io="asyncio"`` serves from one event loop (:mod:`tests.emulator.aioserver`)
        instead of a thread per connection: for load runs with tens of thousands of open
        watches. Its HTTPS listener also speaks HTTP/2 to clients that ask for it, as
        kube-apiserver does, unless ``http2`` is false; the threaded one speaks HTTP/1.1."""
        if io not in ("threads", "asyncio"):
            raise ValueError(f"io is threads or asyncio, not {io!r}")
        self.io = io
        self.http2 = http2
        self.clusters: dict[str, Cluster] = {}
        self.bookmark_interval = bookmark_interval
        self.stopping = False
        self._server: _Server | None = None
        self._tls_server: _Server | None = None
        self._front: AsyncFront | None = None  # io="asyncio": plain HTTP
        self._tls_front: AsyncFront | None = None  # io="asyncio": HTTPS
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_path: Path | None = None
        self._lock = threading.Lock()
        self.add_cluster("default")

    # -- lifecycle --

    def _serve(self, tls: ssl.SSLContext | None) -> _Server:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        server.tls = tls
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="kube-emulator" + ("-tls" if tls else ""), daemon=True).start()
        return server

    def start(self) -> KubeEmulator:
        if self.io == "asyncio":
            from tests.emulator.aioserver import AsyncFront

            self._front = AsyncFront(self, None).start()
        else:
            self._server = self._serve(None)
        return self

    def _tls_port(self) -> int:
        """The HTTPS listener's port (same clusters), started on first use."""
        with self._lock:
            if self._tls_server is None and self._tls_front is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="kube-emulator-")
                cert, key = _self_signed(Path(self._tmp.name))
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(cert, key)
                self.ca_path = cert
                if self.io == "asyncio":
                    from tests.emulator.aioserver import AsyncFront

                    self._tls_front = AsyncFront(self, ctx, self.http2).start()
                else:
                    self._tls_server = self._serve(ctx)
            if self._tls_front is not None:
                return self._tls_front.port
            assert self._tls_server is not None
            return self._tls_server.server_address[1]

    def stop(self) -> None:
        self.stopping = True
        for c in list(self.clusters.values()):
            with c.lock:
                c.changed.notify_all()
        for server in (self._server, self._tls_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        self._server = self._tls_server = None
        for front in (self._front, self._tls_front):
            if front is not None:
                front.stop()
        self._front = self._tls_front = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._front is not None:
            return self._front.port
        assert self._server is not None, "emulator not started"
        return self._server.server_address[1]

    # -- clusters --

    def add_cluster(self, name: str, token: str | None = None) -> Cluster:
        """Create (or return) a logical cluster; its bearer token is random unless given."""
        if name not in self.clusters:
            self.clusters[name] = Cluster(name, token or secrets.token_urlsafe(16))
        return self.clusters[name]

    def cluster(self, name: str = "default") -> Cluster:
        return self.clusters[name] if name in self.clusters else self.add_cluster(name)

    def __getitem__(self, name: str) -> Cluster:
        return self.clusters[name]

    def url(self, name: str = "default", tls: bool = False) -> str:
        """The API server URL of cluster ``name`` (the default cluster has no prefix)."""
        base = (f"https://127.0.0.1:{self._tls_port()}" if tls
                else f"http://127.0.0.1:{self.port}")
        return base if name == "default" else f"{base}/clusters/{name}"

    def configuration(self, name: str = "default", token: str | None = None,
                      tls: bool = False) -> client.Configuration:
        """A client ``Configuration`` for cluster ``name`` (created if missing); plain HTTP
        unless ``tls``."""
        c = self.cluster(name)
        cfg = client.Configuration()
        cfg.host = self.url(name, tls)
        cfg.api_key = {"BearerToken": token if token is not None else c.token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        if tls:
            cfg.ssl_ca_cert = str(self.ca_path)
        cfg.retries = False
        return cfg

    @property
    def https_front(self) -> AsyncFront:
        """The asyncio HTTPS listener (``io="asyncio"``): its HTTP/2 connections and streams,
        GOAWAY and dropped connections for tests."""
        self._tls_port()
        if self._tls_front is None:
            raise RuntimeError("only io='asyncio' has an asyncio front")
        return self._tls_front

    def api_client(self, name: str = "default") -> client.ApiClient:
        return client.ApiClient(self.configuration(name))

    def kubeconfig_dict(self, name: str = "default", token: str | None = None) -> Obj:
        """A kubeconfig for cluster ``name`` over HTTPS with its CA inline (kubectl sends
        bearer tokens only over TLS)."""
        c = self.cluster(name)
        server = self.url(name, tls=True)
        assert self.ca_path is not None
        ca = base64.b64encode(self.ca_path.read_bytes()).decode()
        ctx = f"kepler-{name}"
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": ctx, "cluster": {"server": server,
                                                   "certificate-authority-data": ca}}],
            "users": [{"name": ctx, "user": {"token": token if token is not None else c.token}}],
            "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx,
                                                   "namespace": "default"}}],
            "current-context": ctx,
        }

    def write_kubeconfig(self, path: str | Path, name: str = "default",
                         token: str | None = None) -> Path:
        p = Path(path)
        p.write_text(yaml.safe_dump(self.kubeconfig_dict(name, token)), encoding="utf-8")
        p.chmod(0o600)
        return p

    def iter_clusters(self) -> Iterator[Cluster]:
        return iter(list(self.clusters.values()))
