"""No credential reaches the logs, whichever way it travels: message, args, extras, traceback."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest

from bot.core.text import REDACTED
from bot.logs import redact, setup_logging

BEARER = "sha256~Zm9vYmFyYmF6cXV4cXV1eHF1dXpxdXV6enp6"
SA_JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik1rZXkifQ.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"
CLIENT_KEY = base64.b64encode(b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n").decode()
DISCORD = "MTEyMzQ1Njc4OTAxMjM0NTY3OA.GhIjKl.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abc"
ANTHROPIC = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGh"
WEBHOOK_TOKEN = "Xy9-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefGHIJKLmnopQRSTuv"
WEBHOOK = f"https://discord.com/api/webhooks/1234567890123456789/{WEBHOOK_TOKEN}"
STATIC = "kepler-static-token-0123456789"
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {base64.b64encode(b"ca-bytes" * 10).decode()}
    server: https://kepler.kepler-1a2b3c.svc:443
  name: kepler-station
users:
- name: kepler-station
  user:
    token: {SA_JWT}
    client-key-data: {CLIENT_KEY}
- name: other
  user:
    token: {STATIC}
    password: hunter2hunter2
"""
SECRETS = [BEARER, SA_JWT, CLIENT_KEY, DISCORD, ANTHROPIC, WEBHOOK_TOKEN, STATIC,
           "hunter2hunter2", "dXNlcjpwYXNzd29yZA"]  # fmt: skip


@pytest.fixture
def json_logs():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("DEBUG", "json", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_an_exception_full_of_secrets_logs_none_of_them(json_logs: io.StringIO):
    log = logging.getLogger("kepler.test")
    try:
        raise RuntimeError(
            f"provisioning failed with kubeconfig:\n{KUBECONFIG}\n"
            f"headers={{'Authorization': 'Bearer {BEARER}', 'x-api-key': '{ANTHROPIC}'}}\n"
            f"discord token {DISCORD} posting to {WEBHOOK}/messages/@original\n"
            "retry with Authorization: Basic dXNlcjpwYXNzd29yZA=="
        )
    except RuntimeError:
        log.exception("sandbox for %s failed: %s", "alex", f"Bearer {BEARER}",
                      extra={"kubeconfig": KUBECONFIG, "webhook": WEBHOOK,
                             "env": {"DISCORD_TOKEN": DISCORD, "ANTHROPIC_API_KEY": ANTHROPIC},
                             "learner": "alex"})  # fmt: skip
    log.warning(
        "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds.",
        "POST", f"https://discord.com/api/v10/interactions/1234567890/{WEBHOOK_TOKEN}/callback", 1.0,
    )  # fmt: skip
    log.info("voice key %s", ANTHROPIC, stack_info=True)

    out = json_logs.getvalue()
    lines = out.strip().splitlines()
    assert len(lines) == 3  # one event per line, even with a traceback
    events = [json.loads(line) for line in lines]
    for secret in SECRETS:
        assert secret not in out, f"leaked: {secret[:12]}…"
    first = events[0]
    assert first["level"] == "error" and first["learner"] == "alex"
    assert "RuntimeError" in first["error"] and "Traceback" in first["error"]
    assert "server: https://kepler.kepler-1a2b3c.svc:443" in first["error"]  # not over-redacted
    assert f"/webhooks/1234567890123456789/{REDACTED}" in first["webhook"]
    assert "responded with 429" in events[1]["event"]


def test_ordinary_text_is_left_alone():
    text = "input_tokens=1200 output_tokens: 300 max_tokens=600 phase=ready learner=alex ns=kepler-1a2b"
    assert redact(text) == text


def test_text_format_redacts_too():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("INFO", "text", stream)
        logging.getLogger("x").error("token: %s and %s", STATIC, DISCORD, extra={"key": ANTHROPIC})
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    out = stream.getvalue()
    assert out.count("\n") == 1
    assert STATIC not in out and DISCORD not in out and ANTHROPIC not in out


def test_a_log_line_with_a_jwt_a_bearer_token_and_a_url_password(json_logs: io.StringIO):
    """The log filter is the one redactor: the formats it learned for learner text apply here."""
    logging.getLogger("kepler.test").warning(
        "retrying %s with Authorization: Bearer %s (service account %s)",
        "postgres://kepler:s3cr3t-Pa55@db.kepler.svc:5432/station", BEARER, SA_JWT,
    )  # fmt: skip
    (line,) = json_logs.getvalue().strip().splitlines()
    event = json.loads(line)["event"]
    for secret in ("s3cr3t-Pa55", BEARER, SA_JWT):
        assert secret not in line
    assert "postgres://kepler:[redacted]@db.kepler.svc:5432/station" in event
    assert "Authorization: [redacted]" in event and f"service account {REDACTED})" in event
