"""Hostile text: control sequences stripped, credentials redacted, ordinary text untouched."""

from __future__ import annotations

import pytest

from bot.core.text import REDACTED, from_outside, redact_secrets, scrub, strip_controls

ESC = "\x1b"


@pytest.mark.parametrize(
    "hostile",
    [
        f"{ESC}[31mred{ESC}[0m",  # colour
        f"{ESC}[2J{ESC}[H",  # clear screen, cursor home
        f"{ESC}]0;pwned title\x07",  # window title (OSC … BEL)
        f"{ESC}]52;c;ZWNobyBoaQ=={ESC}\\",  # clipboard write (OSC 52 … ST)
        f"{ESC}]8;;https://evil.example{ESC}\\click{ESC}]8;;{ESC}\\",  # hyperlink
        f"{ESC}P+q544e{ESC}\\",  # DCS request
        f"{ESC}_apc{ESC}\\",  # APC
        "\x9b31m",  # 8-bit CSI
        f"{ESC}c",  # full reset
        "a\rb\x08\x07\x00",  # carriage return overwrite, backspace, bell, NUL
        "\u202eevil\u202c",  # right-to-left override
        f"{ESC}]0;cut off in the middle",  # an OSC with no terminator
    ],
)
def test_no_control_sequence_survives(hostile: str):
    out = strip_controls(f"pod log: {hostile} end")
    assert ESC not in out and "\x9b" not in out and "\x07" not in out and "\r" not in out
    assert all(ch in "\n\t" or ch.isprintable() for ch in out)
    assert out.startswith("pod log: ")


def test_ordinary_text_is_kept():
    text = "Pods: 3/3 Ready\n\tnginx-7d9 → Running ✅ — naïve café\r\nnext line"
    assert strip_controls(text) == text.replace("\r\n", "\n")


def test_scrub_reaches_nested_data():
    data = {"rows": [{"name": f"{ESC}[2Jana", "ok": True}], "n": 3, "t": (f"{ESC}[1mx",)}
    assert scrub(data) == {"rows": [{"name": "ana", "ok": True}], "n": 3, "t": ("x",)}


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    ("pasted", "secret"),
    [
        (f"my token is {JWT}", JWT),
        ("curl -H 'Authorization: Bearer abcdef0123456789xyz'", "abcdef0123456789xyz"),
        ("    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlF", "LS0tLS1CRUdJTi"),
        ("    token: 9f8e7d6c5b4a39281706", "9f8e7d6c5b4a39281706"),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ("key AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890"),
        ("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "ghp_0123456789"),
        ("DATABASE_URL=postgres://admin:s3cr3t-pw@db.internal:5432/app", "s3cr3t-pw"),
        ('{"DB_PASSWORD": "hunter2hunter2"}', "hunter2hunter2"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123", "abcdefghijklmnop"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEow"),
    ],
)
def test_pasted_secrets_are_redacted(pasted: str, secret: str):
    out = redact_secrets(pasted)
    assert secret not in out and REDACTED in out


def test_a_url_keeps_its_user_and_host():
    out = redact_secrets("see https://kepler:pa55word@registry.example/v2/")
    assert out == f"see https://kepler:{REDACTED}@registry.example/v2/"


def test_plain_words_are_not_redacted():
    text = "The token bucket holds 5 tokens; kubectl get pods -o wide; https://kind.sigs.k8s.io"
    assert redact_secrets(text) == text


def test_from_outside_does_both():
    assert from_outside(f"{ESC}[31mtoken: 0123456789abcdef{ESC}[0m") == f"token: {REDACTED}"
