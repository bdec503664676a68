"""Bring your own cluster: the learner's current kubeconfig context (or ``--kubeconfig``).

Used by ``kepler play``. Nothing is created or removed: provisioning only checks the API
answers and reports ready; pause and resume do nothing; delete and reset refuse (the cluster
is the learner's, not ours).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes import config as kconfig
from kubernetes.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION, KubeConfigLoader

from sandbox.apply import DEFAULT_RETRY, Kube, Retry
from sandbox.backends.base import (
    ProgressEvent,
    SandboxBackend,
    SandboxError,
    SandboxInfo,
    SandboxRefused,
)


class KubeconfigBackend(SandboxBackend):
    name = "kubeconfig"

    def __init__(self, kubeconfig: str | Path | None = None, context: str | None = None, *,
                 config_dict: dict[str, Any] | None = None, retry: Retry = DEFAULT_RETRY,
                 timeout: tuple[float, float] = (5.0, 15.0)):  # fmt: skip
        self.path = Path(kubeconfig).expanduser() if kubeconfig else None
        self.context = context
        self._dict = config_dict
        self.retry = retry
        self.timeout = timeout
        self._seen: dict[str, float] = {}  # learner -> first provisioned (epoch)
        self._last: dict[str, float] = {}

    def _config_dict(self) -> dict[str, Any]:
        if self._dict is not None:
            return self._dict
        path = self.path or Path(KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise SandboxError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
        except (UnicodeDecodeError, yaml.YAMLError):  # binary junk, broken YAML: never echo it
            raise SandboxError(f"kubeconfig {path} is not valid YAML") from None
        if not isinstance(loaded, dict):
            raise SandboxError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top)")
        return loaded

    def _client(self) -> client.ApiClient:
        cfg = client.Configuration()
        try:
            if self._dict is None and self.path is None and _in_cluster():
                kconfig.load_incluster_config(cfg)
            else:
                KubeConfigLoader(config_dict=self._config_dict(),
                                 active_context=self.context).load_and_set(cfg)  # fmt: skip
        except kconfig.ConfigException as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise SandboxError(f"kubeconfig: {first}") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # odd shapes inside
            raise SandboxError(f"kubeconfig is not usable ({type(exc).__name__})") from None
        cfg.retries = False
        return client.ApiClient(cfg)

    def provision(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._check(learner_id)

    async def _check(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        def ping() -> None:
            api = self._client()
            try:
                Kube(api, retry=self.retry, timeout=self.timeout).version()
            finally:
                api.close()

        try:
            await asyncio.to_thread(ping)
        except SandboxError as exc:
            yield ProgressEvent(learner_id, "failed", f"your cluster did not answer: {exc}", True)
            return
        now = time.time()
        self._seen.setdefault(learner_id, now)
        self._last[learner_id] = now
        yield ProgressEvent(learner_id, "api", "your cluster answers")
        yield ProgressEvent(learner_id, "ready", "using your own cluster", done=True)

    async def client_for(self, learner_id: str) -> client.ApiClient:
        return await asyncio.to_thread(self._client)

    async def kubeconfig_for(self, learner_id: str) -> str:
        return yaml.safe_dump(self._config_dict(), sort_keys=False)

    async def pause(self, learner_id: str) -> None:
        return None

    def resume(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        return self._check(learner_id)

    def reset(self, learner_id: str) -> AsyncIterator[ProgressEvent]:
        raise SandboxRefused("this is your own cluster: reset it yourself")

    async def delete(self, learner_id: str) -> None:
        raise SandboxRefused("this is your own cluster: Kepler Station never deletes it")

    async def list(self) -> list[SandboxInfo]:
        ctx = self.context or str(self._safe_context())
        return [SandboxInfo(learner_id=lid, name=ctx, phase="ready", created=t,
                            last_active=self._last.get(lid)) for lid, t in self._seen.items()]  # fmt: skip

    def _safe_context(self) -> str:
        try:
            return str(self._config_dict().get("current-context") or "default")
        except SandboxError:
            return "default"


def _in_cluster() -> bool:
    return Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
