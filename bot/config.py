"""Settings from the environment, in one place. The README's configuration table lists them all
(``tests/test_config.py`` keeps the two in step).

Add a setting by adding one :class:`Var` to :data:`VARS` and a field of the same name to
:class:`Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bot.content.course import DEFAULT_CHAPTERS, DEFAULT_PERSONAS


@dataclass(frozen=True)
class Var:
    env: str
    field: str
    default: str
    help: str
    secret: bool = False


VARS: tuple[Var, ...] = (
    Var("KEPLER_DB", "db", "./kepler.db", "SQLite file for all state (WAL mode)."),
    Var("KEPLER_CHAPTERS", "chapters", str(DEFAULT_CHAPTERS), "Folder of chapter directories."),
    Var("KEPLER_PERSONAS", "personas", str(DEFAULT_PERSONAS), "Folder of persona files."),
    Var("KEPLER_LOG_LEVEL", "log_level", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Var("KEPLER_LOG_FORMAT", "log_format", "auto", "json, text, or auto (text on a terminal)."),
    Var(
        "ANTHROPIC_API_KEY",
        "anthropic_api_key",
        "",
        "Enables the crew's voice; without it, scripted lines.",
        True,
    ),
    Var("KEPLER_MODEL", "model", "claude-sonnet-5-5", "Claude model for the crew's voice."),
    Var("KEPLER_VOICE_DAILY_TOKENS", "voice_daily_tokens", "200000", "Tokens per learner per day."),
    Var(
        "KEPLER_VOICE_PER_MINUTE", "voice_per_minute", "6", "Voice requests per learner per minute."
    ),
    Var(
        "KEPLER_VOICE_GUILD_DAILY_TOKENS",
        "voice_guild_daily_tokens",
        "2000000",
        "Tokens per server per day.",
    ),
    Var("DISCORD_TOKEN", "discord_token", "", "Bot token for `kepler serve`.", True),
    Var(
        "DISCORD_GUILD_ID",
        "discord_guild_id",
        "",
        "Sync commands to this server only (development).",
    ),
    Var(
        "HOST_KUBECONFIG",
        "host_kubeconfig",
        "",
        "Kubeconfig of the host cluster for learners' vclusters; empty: in-cluster config.",
        True,
    ),
    Var(
        "KEPLER_HOSTS",
        "hosts",
        "",
        "Several host clusters for sandboxes: `NAME=KUBECONFIG[#CONTEXT];max=N;cpu=..;memory=..`"
        " entries (docs/operating.md); empty: the one in HOST_KUBECONFIG.",
    ),
    Var(
        "KEPLER_SECRET_KEY",
        "secret_key",
        "",
        "Fernet key that encrypts secrets at rest (kubeconfigs, webhook tokens).",
        True,
    ),
    Var(
        "KEPLER_SANDBOX_EXPOSURE",
        "sandbox_exposure",
        "Ingress",
        "How learners reach their vcluster: Ingress (SSL passthrough), LoadBalancer or NodePort.",
    ),
    Var(
        "KEPLER_SANDBOX_HOST",
        "sandbox_host",
        "{namespace}.sandbox.example.com",
        "Host name template for a learner's API server (must resolve to the ingress or load balancer).",
    ),
    Var(
        "KEPLER_SANDBOX_NODE_ADDRESS",
        "sandbox_node_address",
        "",
        "NodePort exposure: the node address learners connect to.",
    ),
    Var(
        "KEPLER_SANDBOX_INGRESS_CLASS",
        "sandbox_ingress_class",
        "nginx",
        "Ingress class with SSL passthrough.",
    ),
    Var(
        "KEPLER_SANDBOX_INGRESS_NAMESPACE",
        "sandbox_ingress_namespace",
        "ingress-nginx",
        "Namespace of the ingress controller (allowed in by host network policies).",
    ),
    Var(
        "KEPLER_SANDBOX_BOT_NAMESPACE",
        "sandbox_bot_namespace",
        "kepler-system",
        "Host namespace the bot runs in when in-cluster.",
    ),
    Var(
        "KEPLER_SANDBOX_STORAGE_CLASS",
        "sandbox_storage_class",
        "",
        "Storage class for control-plane volumes; empty: the host default.",
    ),
    Var(
        "KEPLER_SANDBOX_IDLE_PAUSE",
        "sandbox_idle_pause",
        "1800",
        "Seconds without learner action before a sandbox is paused.",
    ),
    Var(
        "KEPLER_SANDBOX_TTL",
        "sandbox_ttl",
        "1209600",
        "Seconds after the last action before a sandbox is deleted.",
    ),
    Var(
        "KEPLER_SANDBOX_WARN_BEFORE",
        "sandbox_warn_before",
        "86400",
        "Warn the learner this many seconds before a TTL deletion.",
    ),
    Var(
        "KEPLER_SANDBOX_MAX_PER_SERVER",
        "sandbox_max_per_server",
        "25",
        "Sandboxes per Discord server; more learners wait on a waitlist.",
    ),
    Var("KEPLER_SANDBOX_MAX_TOTAL", "sandbox_max_total", "100", "Sandboxes on the host in all."),
    Var(
        "KEPLER_SANDBOX_WARM_POOL",
        "sandbox_warm_pool",
        "0",
        "Ready spare sandboxes kept for instant starts.",
    ),
    Var(
        "KEPLER_VCLUSTER_VALUES",
        "vcluster_values",
        "",
        "Path to the pinned vcluster chart's values.yaml; empty: fetched once and checked by SHA-256.",
    ),
    Var(
        "KEPLER_IDLE_MINUTES",
        "idle_minutes",
        "60",
        "A crew member idle this long drops out of the count.",
    ),
    Var("KEPLER_CHECK_WORKERS", "check_workers", "16", "Threads that read learners' clusters."),
    Var(
        "KEPLER_CHECK_TIMEOUT",
        "check_timeout",
        "5",
        "Seconds before a learner's cluster read times out.",
    ),
    Var(
        "HOST_KUBECONFIG_DATA",
        "host_kubeconfig_data",
        "",
        "Kubeconfig content (YAML or base64), written at start to a 0600 file at HOST_KUBECONFIG.",
        True,
    ),
    Var("KEPLER_HEALTH_PORT", "health_port", "9090", "Port of /healthz and /metrics (0: off)."),
    Var(
        "KEPLER_BACKUP_DIR",
        "backup_dir",
        "",
        "Folder for scheduled backups; empty: `backups/` next to KEPLER_DB.",
    ),
    Var("KEPLER_BACKUP_EVERY", "backup_every", "60", "Minutes between backups (0: off)."),
    Var("KEPLER_BACKUP_KEEP", "backup_keep", "48", "Scheduled backups kept (oldest go first)."),
    Var(
        "KEPLER_SANDBOX_BACKEND",
        "sandbox_backend",
        "vcluster",
        "`kepler serve`: vcluster (one per learner on HOST_KUBECONFIG) or kubeconfig (dev: one shared cluster).",
    ),
)


@dataclass(frozen=True)
class Settings:
    db: str
    chapters: str
    personas: str
    log_level: str
    log_format: str
    anthropic_api_key: str
    model: str
    voice_daily_tokens: str
    voice_per_minute: str
    voice_guild_daily_tokens: str
    discord_token: str
    discord_guild_id: str
    host_kubeconfig: str
    hosts: str
    secret_key: str
    sandbox_exposure: str
    sandbox_host: str
    sandbox_node_address: str
    sandbox_ingress_class: str
    sandbox_ingress_namespace: str
    sandbox_bot_namespace: str
    sandbox_storage_class: str
    sandbox_idle_pause: str
    sandbox_ttl: str
    sandbox_warn_before: str
    sandbox_max_per_server: str
    sandbox_max_total: str
    sandbox_warm_pool: str
    vcluster_values: str
    idle_minutes: str
    check_workers: str
    check_timeout: str
    host_kubeconfig_data: str
    health_port: str
    backup_dir: str
    backup_every: str
    backup_keep: str
    sandbox_backend: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {v.field: env.get(v.env, v.default) for v in VARS}
        return cls(**values)

    def int(self, name: str) -> int:
        return int(getattr(self, name))

    def float(self, name: str) -> float:
        return float(getattr(self, name))

    @property
    def chapters_dir(self) -> Path:
        return Path(self.chapters)

    @property
    def personas_dir(self) -> Path:
        return Path(self.personas)

    def __repr__(self) -> str:  # secrets never reach a log through repr
        shown = {
            f.name: ("***" if _secret(f.name) and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }
        return f"Settings({shown})"


def _secret(field: str) -> bool:
    return any(v.secret for v in VARS if v.field == field)


def markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for v in VARS:
        default = "(repo)/" + Path(v.default).name if v.default.startswith("/") else v.default
        rows.append(
            f"| `{v.env}` | `{default}` | {v.help} |"
            if default
            else f"| `{v.env}` | (empty) | {v.help} |"
        )
    return "\n".join(rows)
