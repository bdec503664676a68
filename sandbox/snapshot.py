"""Reading a learner's cluster: one LIST per kind into a :class:`Snapshot`, and change notices.

Reads
    :class:`ClusterReader` wraps one ``kubernetes.client.ApiClient`` and lists each kind an
    objective needs exactly once (cluster-wide for cluster-scoped kinds, across all namespaces
    for namespaced ones), keeping the API's JSON as is. :meth:`ClusterReader.read` uses the
    official (synchronous) client, for commands like ``kepler verify``;
    :meth:`ClusterReader.read_async`, the bot's, sends the same GETs on the event loop
    (:mod:`sandbox.apihttp`) under a per-learner deadline, so a slow cluster holds nothing
    another learner's read needs. (It used to run the official client in a pool of 16
    threads; at 1,000 learners those threads' fight for the GIL with the event loop
    stretched the loop's pauses.)

Change notices: why watches and not polling
    The product wants an unlock within 2 s of the learner's change and very few requests for
    an idle learner. Polling cannot do both: every 2 s is 30 requests a minute. A cheap poll
    (``LIST ?limit=1`` comparing the list's ``metadata.resourceVersion``) is also wrong on a
    real cluster: an unpaginated list's resourceVersion is etcd's *global* revision, which
    moves every few seconds (node leases, events) even when nothing the learner touches
    changed. So :class:`sandbox.watch.AsyncChangeNotifier` holds one watch per needed kind
    (``Event`` excluded: it changes as a consequence of everything) starting at the
    snapshot's own list resourceVersion, so nothing between the read and the watch is missed.
    It asks for bookmarks and a server-side ``timeoutSeconds`` of the watch window (600 s in
    :mod:`sandbox.service`) and resumes from the last seen resourceVersion, so an idle learner
    costs one request per watched kind per 10 minutes and no re-list. A change arrives in
    well under a second. On ``410 Expired`` it sets the event (conservative: re-check) and
    restarts from a fresh ``LIST ?limit=1``.

    Cost: watches are callbacks of lean connections (:mod:`sandbox.httpstream`), not
    threads or tasks: a thousand learners' streams add no thread to the bot process and no GIL
    contention with the event loop. Learners not on a task need no notifier.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from sandbox.apihttp import Credentials, Observe, get_bytes, parse_json
from sandbox.errors import (
    ClusterError,
    ClusterTimeout,
    ClusterUnreachable,
    for_status,
    for_transport,
)
from sandbox.kinds import BY_KIND, Kind
from sandbox.objectives import Snapshot

# The kinds a check can LIST: the one registry (sandbox.kinds), by kind name.
KINDS: dict[str, Kind] = BY_KIND
KindRef = Kind  # the name this module used to define
NOT_WATCHED = frozenset({"Event"})  # changes as a side effect of everything else
KEEP_MAX = 1024 * 1024  # bytes: a larger LIST answer is not kept between reads


# --- reader ----------------------------------------------------------------------------------


class ClusterReader:
    """Reads one cluster through one ``ApiClient``."""

    def __init__(self, api_client: client.ApiClient):
        self.api = api_client
        self.credentials = Credentials(api_client.configuration)  # reads and watches share it
        self.observe: Observe | None = None  # hears of each async request (metrics)
        host = urlsplit(api_client.configuration.host or "")
        self.server = f"{host.scheme}://{host.netloc}{host.path}"
        self._kept: dict[str, tuple[bytes, Hashable]] = {}  # kind -> (LIST answer, its mark)
        self.kept_reads = 0  # LISTs answered from a kept answer (read_async)

    # -- construction --

    @classmethod
    def from_configuration(cls, configuration: client.Configuration) -> ClusterReader:
        return cls(client.ApiClient(configuration))

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | Path | Mapping[str, Any],
                        context: str | None = None) -> ClusterReader:
        """From a kubeconfig file or dict; a bad one raises :class:`ClusterError`."""
        cfg = client.Configuration()
        try:
            if isinstance(kubeconfig, Mapping):
                config.load_kube_config_from_dict(dict(kubeconfig), context=context,
                                                  client_configuration=cfg,
                                                  persist_config=False)
            else:
                path = Path(kubeconfig)
                if not path.is_file():
                    raise ClusterError(f"kubeconfig {path} does not exist")
                config.load_kube_config(str(path), context=context, client_configuration=cfg,
                                        persist_config=False)
        except ClusterError:
            raise
        except (ConfigException, ValueError, TypeError, KeyError, OSError) as exc:
            # ConfigException texts name fields, not values; still keep only the first line.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClusterError(f"invalid kubeconfig: {first[:160]}") from None
        except Exception as exc:  # yaml errors and the like: never echo the file
            raise ClusterError(f"invalid kubeconfig: {type(exc).__name__}") from None
        cfg.retries = False
        return cls(client.ApiClient(cfg))

    def close(self) -> None:
        self.api.close()

    # -- requests --

    def _request(self, path: str, query: dict[str, str], timeout: float | tuple[float, float]
                 ) -> Any:
        """GET ``path`` returning the unread urllib3 response; errors mapped to ours."""
        method, url, headers, body, post = self.api.param_serialize(
            method="GET", resource_path=path, query_params=list(query.items()),
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        what = f"{self.server}{path}"
        try:
            resp = self.api.call_api(method, url, headers, body, post, _request_timeout=timeout)
        except urllib3.exceptions.MaxRetryError as exc:
            raise _map_urllib3(exc.reason, what, timeout) from None
        except urllib3.exceptions.HTTPError as exc:
            raise _map_urllib3(exc, what, timeout) from None
        except OSError as exc:
            raise ClusterUnreachable(f"{what}: {type(exc).__name__}") from None
        if not 200 <= resp.status < 300:
            raise _status_error(resp, what)
        return resp.response

    def list(self, kind: str, timeout: float, limit: int | None = None) -> dict[str, Any]:
        """One LIST of ``kind`` as JSON (``limit`` only for cheap resourceVersion probes)."""
        ref = KINDS[kind]
        query = {"limit": str(limit)} if limit else {}
        resp = self._request(ref.path, query, timeout)
        try:
            data = resp.data
        except urllib3.exceptions.TimeoutError:
            raise ClusterTimeout(f"{self.server}{ref.path}: read timed out") from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterUnreachable(f"{self.server}{ref.path}: {type(exc).__name__}") from None
        try:
            out = json.loads(data)
        except ValueError:
            raise ClusterError(f"{self.server}{ref.path}: answer is not JSON") from None
        return _as_list(out, f"{self.server}{ref.path}")

    def read(self, kinds: Iterable[str], timeout: float = 10.0) -> Snapshot:
        """Exactly one LIST per kind, all within ``timeout`` seconds in total."""
        deadline = time.monotonic() + timeout
        objects: dict[str, list[dict[str, Any]]] = {}
        versions: dict[str, str] = {}
        for kind in _known(kinds):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterTimeout(f"{self.server}: reading {kind} ran out of time "
                                     f"({timeout:g} s)")
            objects[kind], versions[kind] = _items(kind, self.list(kind, left))
        return Snapshot(objects, versions=versions)

    async def read_async(self, kinds: Iterable[str], timeout: float = 10.0,
                         marks: Callable[[str], Hashable | None] | None = None) -> Snapshot:
        """:meth:`read` on the event loop (:mod:`sandbox.apihttp`, no thread): at most one
        LIST per kind, one after another, all within ``timeout`` seconds.

        ``marks`` (the learner's watch: :meth:`sandbox.watch.AsyncChangeNotifier.mark`) says
        where each watched kind's stream stands. A LIST's answer is kept (as the bytes it came
        in: nothing for the garbage collector to walk) with the mark taken just before it;
        while the kind's mark stays the same, no change was heard and none missed, and the
        next read parses the kept answer instead of asking again. So a check after a Pod
        changed lists Pods, not the Services and Namespaces of the same task as well."""
        wanted = _known(kinds)
        cfg = self.api.configuration
        objects: dict[str, list[dict[str, Any]]] = {}
        versions: dict[str, str] = {}
        try:
            if cfg.proxy or getattr(cfg, "tls_server_name", None):
                # kubeconfig settings only the official client honours (proxy-url,
                # tls-server-name): its synchronous read, in a thread
                return await asyncio.wait_for(asyncio.to_thread(self.read, wanted, timeout),
                                              timeout + 0.25)
            async with asyncio.timeout(timeout):
                for kind in wanted:
                    what = f"{self.server}{KINDS[kind].path}"
                    mark = marks(kind) if marks is not None else None
                    kept = self._kept.get(kind)
                    if mark is not None and kept is not None and kept[1] == mark:
                        body = kept[0]
                        self.kept_reads += 1
                    else:
                        body = await get_bytes(cfg, self.credentials, KINDS[kind].path, {},
                                               what, self.observe)
                        if mark is not None and len(body) <= KEEP_MAX:
                            self._kept[kind] = (body, mark)
                        else:
                            self._kept.pop(kind, None)
                    listed = _as_list(parse_json(body, what), what)
                    objects[kind], versions[kind] = _items(kind, listed)
        except TimeoutError:
            raise ClusterTimeout(f"{self.server}: no snapshot within {timeout:g} s") from None
        finally:
            if marks is None:
                self._kept.clear()
            else:  # kinds no longer watched: their answers say nothing any more
                for kind in [k for k in self._kept if marks(k) is None]:
                    del self._kept[kind]
        return Snapshot(objects, versions=versions)


def _known(kinds: Iterable[str]) -> list[str]:
    """The kinds, sorted and de-duplicated; ``ValueError`` for one with no LIST here."""
    wanted = sorted(set(kinds))
    for kind in wanted:
        if kind not in KINDS:
            raise ValueError(f"no LIST known for kind {kind!r}")
    return wanted


def _as_list(listed: Any, what: str) -> dict[str, Any]:
    if not isinstance(listed, dict) or not isinstance(listed.get("items"), list):
        raise ClusterError(f"{what}: answer is not a list")
    return listed


def _items(kind: str, listed: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """A LIST's items (with the ``kind``/``apiVersion`` lists leave out: objectives may want
    them) and its resourceVersion."""
    items = listed["items"]
    ref = KINDS[kind]
    for item in items:
        item.setdefault("kind", kind)
        item.setdefault("apiVersion", ref.group_version)
    return items, str((listed.get("metadata") or {}).get("resourceVersion", ""))


def _map_urllib3(exc: BaseException | None, what: str, timeout: float | tuple[float, float]
                 ) -> ClusterError:
    return for_transport(exc, what, timeout)


def _status_error(resp: Any, what: str) -> ClusterError:
    """The error for a non-2xx answer (its ``Status`` reason when it has one)."""
    try:
        status = json.loads(resp.read() or b"{}")
        reason = status.get("reason") or resp.reason
    except (ValueError, AttributeError, urllib3.exceptions.HTTPError):
        reason = resp.reason
    return for_status(resp.status, reason, what)
