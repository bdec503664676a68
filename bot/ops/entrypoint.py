"""The container's entrypoint: ``python -m bot.ops.entrypoint serve`` → ``kepler serve``.

Before handing over (``exec``, so ``kepler`` gets the signals directly):

1. ``HOST_KUBECONFIG_DATA`` (a Fly secret: the kubeconfig's YAML, or that YAML base64-encoded)
   is written to ``HOST_KUBECONFIG`` (default :data:`DEFAULT_KUBECONFIG`) with mode 0600, and
   removed from the environment the bot sees. The file is outside the volume, so the
   credential never lands on persistent disk; it is rewritten at every start.
2. For ``serve``: a backup tagged ``prestart`` of an existing database, before the new
   release's migrations run (skipped when scheduled backups are off).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import shutil
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

import yaml

log = logging.getLogger("kepler.entrypoint")

DEFAULT_KUBECONFIG = str(Path.home() / ".kube" / "kepler-host.yaml")


class KubeconfigDataError(ValueError):
    """The secret is not a kubeconfig (the message never contains its content)."""


def decode_kubeconfig(data: str) -> str:
    """The kubeconfig YAML from the secret's value: YAML as is, or base64 of it."""
    text = data.strip()
    if not text.startswith(("apiVersion", "clusters", "kind", "{", "current-context", "---")):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise KubeconfigDataError(
                "HOST_KUBECONFIG_DATA is neither kubeconfig YAML nor base64 of it"
            ) from None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KubeconfigDataError("HOST_KUBECONFIG_DATA is not valid YAML") from None
    if not isinstance(parsed, dict) or not parsed.get("clusters"):
        raise KubeconfigDataError("HOST_KUBECONFIG_DATA has no clusters: not a kubeconfig")
    return text if text.endswith("\n") else text + "\n"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` created 0600 (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def materialize_kubeconfig(environ: MutableMapping[str, str]) -> str | None:
    """Turn ``HOST_KUBECONFIG_DATA`` into a 0600 file; point ``HOST_KUBECONFIG`` at it.

    Returns the path written, or None when the secret is not set (``HOST_KUBECONFIG`` as is).
    """
    data = environ.pop("HOST_KUBECONFIG_DATA", "")
    if not data.strip():
        return None
    path = Path(environ.get("HOST_KUBECONFIG") or DEFAULT_KUBECONFIG)
    write_private(path, decode_kubeconfig(data))
    environ["HOST_KUBECONFIG"] = str(path)
    return str(path)


def prestart_backup() -> None:
    from bot.config import Settings
    from bot.ops.backup import from_settings

    settings = Settings.from_env()
    scheduler = from_settings(settings)
    if scheduler is None or not Path(settings.db).exists():
        return
    result = scheduler.backup_now(tag="prestart")
    log.info(
        "prestart backup written",
        extra={"path": str(result.path), "bytes": result.size, "seconds": round(result.seconds, 3)},
    )


def main(argv: Sequence[str] | None = None) -> int:
    from bot.config import Settings
    from bot.logs import setup_logging

    args = list(sys.argv[1:] if argv is None else argv) or ["serve"]
    settings = Settings.from_env()
    setup_logging(settings.log_level, settings.log_format)
    try:
        path = materialize_kubeconfig(os.environ)
    except (KubeconfigDataError, OSError) as exc:
        log.error("cannot write the host kubeconfig: %s", exc)
        return 78  # EX_CONFIG
    if path:
        log.info("host kubeconfig written", extra={"path": path})
    if args[0] == "serve":
        try:
            prestart_backup()
        except Exception as exc:  # a failed backup must not keep the bot down
            log.error("prestart backup failed: %s", exc)
    kepler = shutil.which("kepler") or "kepler"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(kepler, [kepler, *args])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
