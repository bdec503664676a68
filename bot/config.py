"""Settings from the environment: one typed object (pydantic-settings), read once per command.

Each field names its variable (``KEPLER_`` + the field's name unless an alias says otherwise),
its default, its bounds and one line of help; the README's configuration table is generated
from these fields (``kepler settings --readme``) and ``tests/test_config.py`` checks both
directions: every variable the code reads is declared here, and every field here is used.
A bad value fails at start with one line naming the variable.

Add a setting by adding one field below, use it, and run ``kepler settings --readme``.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, JsonValue, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from bot.content.course import DEFAULT_CHAPTERS, DEFAULT_PERSONAS

if TYPE_CHECKING:
    from sandbox.lifecycle import LifecyclePolicy
    from sandbox.provision import HostSettings, Sizing

JsonDict = dict[str, JsonValue]
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|Ki|Mi|Gi)?$"  # a Kubernetes quantity, as we use them
PREFIX = "KEPLER_"
SECRET: JsonDict = {"secret": True}
_environ: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "kepler_settings_environ", default=None
)


class SettingsError(ValueError):
    """A variable has a value the bot cannot use; the message names it (never its value)."""


class _Environ(EnvSettingsSource):
    """The process environment, or the mapping :meth:`Settings.from_env` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        given = _environ.get()
        return parse_env_vars(
            os.environ if given is None else given,
            self.case_sensitive,
            self.env_ignore_empty,
            self.env_parse_none_str,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, case_sensitive=False, frozen=True, populate_by_name=True,
        extra="ignore",
    )  # fmt: skip

    # --- state and content ------------------------------------------------------------------
    db: str = Field("./kepler.db", description="SQLite file for all state (WAL mode).")
    chapters: str = Field(str(DEFAULT_CHAPTERS), description="Folder of chapter directories.")
    personas: str = Field(str(DEFAULT_PERSONAS), description="Folder of persona files.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["json", "text", "auto"] = Field(
        "auto", description="json, text, or auto (text on a terminal)."
    )
    # --- the crew's voice ---------------------------------------------------------------
    anthropic_api_key: str = Field(
        "", validation_alias="ANTHROPIC_API_KEY", repr=False, json_schema_extra=SECRET,
        description="Enables the crew's voice; without it, scripted lines.",
    )  # fmt: skip
    model: str = Field("claude-sonnet-5-5", description="Claude model for the crew's voice.")
    voice_daily_tokens: int = Field(200_000, ge=0, description="Tokens per learner per day.")
    voice_per_minute: int = Field(6, ge=0, description="Voice requests per learner per minute.")
    voice_guild_daily_tokens: int = Field(
        2_000_000, ge=0, description="Tokens per server per day."
    )
    # --- Discord ------------------------------------------------------------------------
    discord_token: str = Field(
        "", validation_alias="DISCORD_TOKEN", repr=False, json_schema_extra=SECRET,
        description="Bot token for `kepler serve`.",
    )  # fmt: skip
    discord_guild_id: str = Field(
        "", validation_alias="DISCORD_GUILD_ID",
        description="Sync commands to this server only (development).",
    )  # fmt: skip
    public_url: str = Field(
        "",
        description="Public base URL of the bot's HTTP server (portraits at /portraits/, "
        "browser-terminal links at /terminal/); empty: no portraits.",
    )
    # --- host clusters and sandboxes ----------------------------------------------------
    host_kubeconfig: str = Field(
        "", validation_alias="HOST_KUBECONFIG", repr=False, json_schema_extra=SECRET,
        description="Kubeconfig of the host cluster for learners' vclusters; empty: in-cluster config.",
    )  # fmt: skip
    host_kubeconfig_data: str = Field(
        "", validation_alias="HOST_KUBECONFIG_DATA", repr=False, json_schema_extra=SECRET,
        description="Kubeconfig content (YAML or base64), written at start to a 0600 file at HOST_KUBECONFIG.",
    )  # fmt: skip
    hosts: str = Field(
        "",
        description="Several host clusters for sandboxes: `NAME=KUBECONFIG[#CONTEXT];max=N;cpu=..;memory=..`"
        " entries (docs/operating.md); empty: the one in HOST_KUBECONFIG.",
    )
    secret_key: str = Field(
        "", repr=False, json_schema_extra=SECRET,
        description="Fernet key that encrypts secrets at rest (kubeconfigs, webhook tokens).",
    )  # fmt: skip
    sandbox_backend: Literal["vcluster", "kubeconfig"] = Field(
        "vcluster",
        description="`kepler serve`: vcluster (one per learner on HOST_KUBECONFIG) or kubeconfig (dev: one shared cluster).",
    )
    sandbox_exposure: Literal["Ingress", "LoadBalancer", "NodePort"] = Field(
        "Ingress",
        description="How learners reach their vcluster: Ingress (SSL passthrough), LoadBalancer or NodePort.",
    )
    sandbox_host: str = Field(
        "{namespace}.sandbox.example.com",
        description="Host name template for a learner's API server (must resolve to the ingress or load balancer).",
    )
    sandbox_node_address: str = Field(
        "", description="NodePort exposure: the node address learners connect to."
    )
    sandbox_ingress_class: str = Field("nginx", description="Ingress class with SSL passthrough.")
    sandbox_ingress_namespace: str = Field(
        "ingress-nginx",
        description="Namespace of the ingress controller (allowed in by host network policies).",
    )
    sandbox_bot_namespace: str = Field(
        "kepler-system", description="Host namespace the bot runs in when in-cluster."
    )
    sandbox_storage_class: str = Field(
        "", description="Storage class for control-plane volumes; empty: the host default."
    )
    sandbox_dns: str = Field(
        "1.1.1.1 8.8.8.8",
        description="Resolvers each sandbox's CoreDNS forwards to (the host must allow egress to them on 53).",
    )
    sandbox_idle_pause: float = Field(
        1800, ge=0, description="Seconds without learner action before a sandbox is paused."
    )
    sandbox_ttl: float = Field(
        1_209_600, ge=0, description="Seconds after the last action before a sandbox is deleted."
    )
    sandbox_warn_before: float = Field(
        86_400, ge=0, description="Warn the learner this many seconds before a TTL deletion."
    )
    sandbox_max_per_server: int = Field(
        25, ge=0, description="Sandboxes per Discord server; more learners wait on a waitlist."
    )
    sandbox_max_total: int = Field(100, ge=0, description="Sandboxes on the host in all.")
    sandbox_warm_pool: int = Field(
        0, ge=0, description="Ready spare sandboxes kept for instant starts."
    )
    sandbox_control_plane_cpu: str = Field(
        "200m", pattern=QUANTITY,
        description="CPU each sandbox's vcluster control plane requests (at most its 1 CPU "
        "limit); `kepler sandbox usage` suggests a figure from measured use.",
    )  # fmt: skip
    sandbox_control_plane_memory: str = Field(
        "256Mi", pattern=QUANTITY,
        description="Memory it requests (at most its 1Gi limit; keep it above the measured "
        "maximum: the control plane is one pod).",
    )  # fmt: skip
    vcluster_values: str = Field(
        "",
        description="Path to the pinned vcluster chart's values.yaml; empty: fetched once and checked by SHA-256.",
    )
    # --- the browser terminal (bot/web/, sandbox/workbench.py) ------------------------------
    web_secret: str = Field(
        "", repr=False, json_schema_extra=SECRET,
        description="Signs browser-terminal links (HMAC, 16+ characters); empty: no /terminal.",
    )  # fmt: skip
    workbench_image: str = Field(
        "", description="Learners' workbench image for the browser terminal, pinned by digest "
        "(`repo:tag@sha256:…`, docs/sandbox.md); empty: no workbench pods.",
    )  # fmt: skip
    # --- engine and checks ----------------------------------------------------------------
    idle_minutes: float = Field(
        60, gt=0, description="A crew member idle this long drops out of the count."
    )
    check_timeout: float = Field(
        5, gt=0, le=120, description="Seconds before a learner's cluster read times out."
    )
    # --- operations -----------------------------------------------------------------------
    health_port: int = Field(
        9090, ge=0, le=65535, description="Port of /healthz and /metrics (0: off)."
    )
    backup_dir: str = Field(
        "", description="Folder for scheduled backups; empty: `backups/` next to KEPLER_DB."
    )
    backup_every: float = Field(60, ge=0, description="Minutes between backups (0: off).")
    backup_keep: int = Field(48, ge=1, description="Scheduled backups kept (oldest go first).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environ(settings_cls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: the process environment)."""
        token = _environ.set(env)
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None
        finally:
            _environ.reset(token)

    @property
    def chapters_dir(self) -> Path:
        return Path(self.chapters)

    @property
    def personas_dir(self) -> Path:
        return Path(self.personas)

    @property
    def idle_seconds(self) -> float:
        return self.idle_minutes * 60

    def host_settings(self) -> HostSettings:
        """How sandboxes are exposed on a host cluster (``kepler serve``, ``kepler sandbox``)."""
        from sandbox.provision import HostSettings

        return HostSettings(
            sizing=self._sizing(),
            exposure=self.sandbox_exposure,
            host_template=self.sandbox_host,
            node_address=self.sandbox_node_address,
            ingress_class=self.sandbox_ingress_class,
            ingress_namespace=self.sandbox_ingress_namespace,
            bot_namespace=self.sandbox_bot_namespace,
            storage_class=self.sandbox_storage_class,
            dns_upstreams=tuple(self.sandbox_dns.split()),
            workbench_image=self.workbench_image,
        )

    def _sizing(self) -> Sizing:
        """The control plane's requests, refused when zero or above its limits (the API
        server would refuse every sandbox's control plane)."""
        from kubernetes.utils import parse_quantity

        from sandbox.provision import CONTROL_PLANE_LIMITS, Sizing

        for name, key in (("sandbox_control_plane_cpu", "cpu"),
                          ("sandbox_control_plane_memory", "memory")):  # fmt: skip
            value = parse_quantity(getattr(self, name))
            if not 0 < value <= parse_quantity(CONTROL_PLANE_LIMITS[key]):
                raise SettingsError(f"{PREFIX}{name.upper()}: must be above 0 and at most the "
                                    f"control plane's {key} limit ({CONTROL_PLANE_LIMITS[key]})")
        return Sizing(control_plane_cpu=self.sandbox_control_plane_cpu,
                      control_plane_memory=self.sandbox_control_plane_memory)  # fmt: skip

    def lifecycle_policy(self) -> LifecyclePolicy:
        """Pause, TTL, caps and the warm pool for the sandbox manager."""
        from sandbox.lifecycle import LifecyclePolicy

        return LifecyclePolicy(
            idle_pause_after=self.sandbox_idle_pause,
            ttl=self.sandbox_ttl,
            warn_before=self.sandbox_warn_before,
            max_per_server=self.sandbox_max_per_server,
            max_total=self.sandbox_max_total,
            warm_pool=self.sandbox_warm_pool,
        )


def env_name(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    return alias if isinstance(alias, str) else PREFIX + name.upper()


def variables() -> list[tuple[str, str, FieldInfo]]:
    """(variable, field name, field) for every setting, in declaration order."""
    return [(env_name(n, f), n, f) for n, f in Settings.model_fields.items()]


def is_secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def markdown_table() -> str:
    """The README's configuration table, generated from the fields."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for env, _name, info in variables():
        default = str(info.default)
        if default.startswith("/"):
            default = "(repo)/" + Path(default).name
        if isinstance(info.default, float) and info.default.is_integer():
            default = str(int(info.default))
        shown = f"`{default}`" if default else "(empty)"
        rows.append(f"| `{env}` | {shown} | {info.description} |")
    return "\n".join(rows)


def _explain(exc: ValidationError) -> str:
    """One line per bad variable: its name and what is wrong (never the value: it may be a
    secret)."""
    names = {n: env for env, n, _info in variables()}
    problems = []
    for error in exc.errors():
        loc = str(error["loc"][0]) if error["loc"] else ""
        env = names.get(loc, loc)
        problems.append(f"{env}: {error['msg']}")
    return "; ".join(problems)


def _values(settings: Settings) -> dict[str, Any]:  # for tests and `kepler settings`
    return {env: getattr(settings, n) for env, n, _info in variables()}
