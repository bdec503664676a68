"""Where the terminal finds a learner's workbench: the store's sandbox record and the host API.

:class:`HostWorkbenches` is :class:`bot.web.server.Workbenches` for ``kepler serve``. The
generation is the sandbox's host namespace (a reset makes a new one). Exec goes to
``workbench-0`` (``sandbox/workbench.py``) through the API server of the host that holds the
sandbox, with the bot's own host credentials; the bot's RBAC allows ``pods/exec`` on that pod
name only and the admission policy keeps it inside sandbox namespaces (deploy/).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.web.kexec import ExecTarget
from bot.web.server import Phase, Workbench
from sandbox.apihttp import auth_headers, ssl_context
from sandbox.workbench import COMMAND, CONTAINER, POD

_PHASES: dict[str, Phase] = {"ready": "ready", "paused": "paused", "provisioning": "starting",
                             "waiting": "starting"}  # fmt: skip


class HostWorkbenches:
    def __init__(self, store: Any, host_configs: Mapping[str, Any]):
        self.store = store
        self.host_configs = host_configs  # host name ("" when there is one) -> Configuration

    async def find(self, learner: str) -> Workbench:
        record = await self.store.get_sandbox(learner)
        if record is None or not record.name or record.phase in ("failed", "deleting"):
            return Workbench("gone", "")
        return Workbench(_PHASES.get(record.phase, "starting"), record.name)

    async def target(self, learner: str) -> ExecTarget:
        record = await self.store.get_sandbox(learner)
        if record is None:
            raise LookupError("no sandbox")
        cfg = self.host_configs.get(record.host) or self.host_configs.get("")
        if cfg is None:
            raise LookupError(f"no host cluster named {record.host!r}")
        headers = await asyncio.to_thread(auth_headers, cfg)  # may run a token refresh hook
        headers.pop("Accept", None)
        return ExecTarget(base_url=str(cfg.host), namespace=record.name, pod=POD,
                          container=CONTAINER, command=COMMAND, headers=headers,
                          ssl=ssl_context(cfg) or None)  # fmt: skip
