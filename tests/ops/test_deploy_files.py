"""fly.toml, the Dockerfile and .dockerignore, read as an operator's reviewer would."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bot.config import is_secret, variables
from sandbox.provision import VALUES_SHA256, VCLUSTER_VERSION

ROOT = Path(__file__).resolve().parents[2]


def _seconds(value: str | int) -> float:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)(ms|s|m)", value)
    assert match, f"not a duration: {value}"
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def test_fly_toml_runs_one_always_on_machine_with_a_volume_and_a_health_check():
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    service = fly["http_service"]
    assert service["auto_stop_machines"] == "off"
    assert service["min_machines_running"] == 1
    assert service.get("auto_start_machines") is False

    mounts = fly["mounts"] if isinstance(fly["mounts"], list) else [fly["mounts"]]
    assert len(mounts) == 1 and mounts[0]["destination"] == "/data"
    env = fly["env"]
    assert env["KEPLER_DB"] == "/data/kepler.db"
    assert env["KEPLER_BACKUP_DIR"].startswith("/data/")
    # the kubeconfig file is written outside the volume (never on persistent disk)
    assert not env["HOST_KUBECONFIG"].startswith("/data")

    port = int(env["KEPLER_HEALTH_PORT"])
    assert service["internal_port"] == port
    checks = service["checks"]
    assert any(c["path"] == "/healthz" and c.get("method", "GET") == "GET" for c in checks)
    for check in checks:
        assert _seconds(check["timeout"]) < _seconds(check["interval"])
        assert _seconds(check["grace_period"]) >= 30  # gateway login + migrations + backup
    assert fly["metrics"] == {"port": port, "path": "/metrics"}

    assert fly["kill_signal"] == "SIGTERM"
    assert _seconds(fly["kill_timeout"]) >= 30
    # no secret values in the file, only their names in comments
    text = (ROOT / "fly.toml").read_text()
    secrets = {env for env, _, info in variables() if is_secret(info)} - {"HOST_KUBECONFIG"}  # that one is a path here
    for name in secrets:
        assert name not in env
    assert re.search(r"HOST_KUBECONFIG_DATA", text)
    # every [env] name is a setting the bot knows
    assert set(env) <= {name for name, _, _ in variables()}


def _stages(dockerfile: str) -> list[str]:
    return re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.M | re.I)


def test_dockerfile_is_multi_stage_uv_frozen_and_non_root():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    body = "\n".join(lines)
    stages = _stages(body)
    names = [alias for _image, alias in stages]
    assert "builder" in names and "runtime" in names and names[-1] == "runtime"
    assert len(stages) >= 3  # uv, builder, runtime

    # dependencies from the lock, exactly, without dev tools
    syncs = re.findall(r"uv sync ([^\n\\]*)", body)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "COPY --from=builder /app/.venv /app/.venv" in body
    assert "pip install" not in body

    # the runtime's user: numeric (Fly mounts the volume for it), not root, set last
    users = re.findall(r"^USER\s+(\S+)", body, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    runtime = body[body.index("AS runtime") :]
    assert "useradd" in runtime and "--uid 10001" in runtime
    assert users[-1] == "10001:10001"
    assert runtime.index("USER") > max(runtime.rfind("\nRUN "), runtime.rfind("\nCOPY "))

    # slim Python runtime; the course travels with the code; no kubectl/helm
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.1[12]-slim", body)
    assert "COPY chapters /app/chapters" in body and "COPY personas /app/personas" in body
    assert "kubectl" not in body.lower() and "helm " not in body.lower()
    assert 'ENTRYPOINT ["python", "-m", "bot.ops.entrypoint"]' in body
    assert 'CMD ["serve"]' in body
    assert "KEPLER_DB=/data/kepler.db" in body
    assert "STOPSIGNAL SIGTERM" in body


def test_dockerfile_bakes_the_pinned_vcluster_values():
    text = (ROOT / "Dockerfile").read_text()
    assert f"--checksum=sha256:{VALUES_SHA256}" in text
    assert f"/v{VCLUSTER_VERSION}/chart/values.yaml" in text
    path = re.search(r"KEPLER_VCLUSTER_VALUES=(\S+)", text)
    assert path and f"vcluster-{VCLUSTER_VERSION}-values.yaml" in path.group(1)


def test_dockerignore_keeps_state_credentials_and_tests_out_of_the_context():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".git", ".venv", "tests", "*.db", "*.db-wal", ".env", "*.kubeconfig"):
        assert pattern in ignored
    for needed in ("bot", "sandbox", "chapters", "personas", "uv.lock", "pyproject.toml",
                   "README.md"):  # fmt: skip
        assert needed not in ignored


def test_the_code_never_shells_out_to_kubectl_or_helm():
    """The image carries neither; a subprocess call to them would fail only in production."""
    for folder in ("bot", "sandbox"):
        for path in (ROOT / folder).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            if "subprocess" in source or "os.system" in source:
                assert not re.search(r"[\"'](kubectl|helm)[\"']", source), path
