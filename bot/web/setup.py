"""``kepler serve``'s browser terminal, from the settings (None when it is not configured)."""

from __future__ import annotations

import logging
from typing import Any

from bot.web.server import TerminalWeb
from bot.web.tokens import LinkSigner

log = logging.getLogger(__name__)


def build_terminal(settings: Any, store: Any, manager: Any, backend: Any) -> TerminalWeb | None:
    """The terminal when ``KEPLER_WEB_SECRET`` is set and the sandboxes run on host clusters.

    Exec goes through each host's API server with the bot's own credentials (the backend's
    client configuration); typing in a terminal counts as the learner being active."""
    from bot.web.workbenches import HostWorkbenches

    if not settings.web_secret:
        return None
    if not settings.workbench_image:
        log.warning("KEPLER_WEB_SECRET is set but KEPLER_WORKBENCH_IMAGE is not: no workbench "
                    "pods, so /terminal links will find none (docs/sandbox.md)")  # fmt: skip
    pool = getattr(manager, "pool", None)
    if pool is not None:
        configs = {name: b.kube.api.configuration for name, b in pool.backends.items()}
    elif getattr(backend, "kube", None) is not None:
        configs = {"": backend.kube.api.configuration}
    else:
        log.warning("the browser terminal needs the vcluster backend; it stays off")
        return None
    base = settings.public_url or f"http://localhost:{settings.health_port}"
    signer = LinkSigner(settings.web_secret, spent=store)  # spent links outlive a restart
    return TerminalWeb(signer, HostWorkbenches(store, configs),
                       base_url=base, on_activity=manager.touch, kept=store)  # fmt: skip
