"""Nothing the crew says can ping a server or carry a credential."""

from __future__ import annotations

import pytest

from bot.voice.safety import ZWSP, SafeStream, clean

KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lCQURBS0Jn
    server: https://10.0.0.1:6443
users:
- name: chen
  user:
    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVB
    token: eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ
"""


@pytest.mark.parametrize(
    "raw", ["@everyone listen up", "@here now", "<@&123456> crew", "<@987654> hi", "<@!987654> hi"]
)
def test_mentions_are_neutralised(raw: str) -> None:
    out = clean(raw)
    assert ZWSP in out
    for bad in ("@everyone", "@here", "<@&123456>", "<@987654>", "<@!987654>"):
        assert bad not in out


def test_kubeconfig_and_tokens_are_stripped() -> None:
    out = clean(
        KUBECONFIG + "\ncurl -H 'Authorization: Bearer abcdef1234567890xyz' "
        "and key sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA"
    )
    for secret in ("LS0tLS1C", "eyJhbGci", "abcdef1234567890xyz", "sk-ant-api03"):
        assert secret not in out
    assert "server: https://10.0.0.1:6443" in out  # the rest survives
    assert "[redacted]" in out


def test_pem_block_is_stripped() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----"
    assert "MIIEpAIB" not in clean(f"here: {pem} done")


def test_ordinary_text_is_untouched() -> None:
    text = "Run `kubectl get pods -n life-support` and check the READY column, Chen."
    assert clean(text) == text


def test_stream_never_leaks_a_split_secret() -> None:
    text = (
        "Use this: Authorization: Bearer abcdefghijklmnop1234 then @every"
        "one and "
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY----- ok"
    )
    for size in (1, 3, 7, 20):
        s = SafeStream()
        out = "".join(s.feed(text[i : i + size]) for i in range(0, len(text), size)) + s.flush()
        assert "abcdefghijklmnop1234" not in out
        assert "MIIEvQIB" not in out
        assert "@everyone" not in out
        assert out.endswith("ok")
