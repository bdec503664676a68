"""The apply path's errors come from the one mapper (sandbox.errors), in the sandbox's words:
real answers from the emulator, real transport failures, no mocks."""

from __future__ import annotations

import socket

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.apply import NO_RETRY, Kube, classify
from sandbox.backends.base import (
    SandboxError,
    SandboxForbidden,
    SandboxUnavailable,
)
from sandbox.errors import for_status
from tests.emulator import KubeEmulator
from tests.emulator import objects as ob

CM = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "oxygen", "namespace": "default"}, "data": {"o2": "21"}}  # fmt: skip


@pytest.fixture
def cluster(emu: KubeEmulator):
    c = emu.add_cluster("apply-errors")
    c.put(ob.namespace("default"))
    yield c
    c.clear_faults()


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, SandboxForbidden), (403, SandboxForbidden), (422, SandboxError),
     (503, SandboxUnavailable), (429, SandboxUnavailable)],
)  # fmt: skip
def test_statuses(emu: KubeEmulator, cluster, status: int, error: type[SandboxError]):
    cluster.fail(status, "PATCH")
    api = emu.api_client("apply-errors")
    try:
        with pytest.raises(SandboxError) as raised:
            Kube(api, retry=NO_RETRY).apply(dict(CM))
    finally:
        api.close()
    assert type(raised.value) is error
    assert "default/oxygen" in str(raised.value) and str(status) in str(raised.value)


def test_not_found_is_an_answer(emu: KubeEmulator, cluster):
    api = emu.api_client("apply-errors")
    try:
        kube = Kube(api, retry=NO_RETRY)
        assert kube.get("v1", "ConfigMap", "nothing", "default") is None
        assert kube.delete("v1", "ConfigMap", "nothing", "default") is False
    finally:
        api.close()


def test_refused_connection_is_unavailable_and_names_no_credential():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{port}"
    cfg.api_key = {"authorization": "Bearer kepler-secret-token-123456"}
    cfg.retries = False
    api = client.ApiClient(cfg)
    try:
        with pytest.raises(SandboxUnavailable) as raised:
            Kube(api, retry=NO_RETRY).version()
    finally:
        api.close()
    assert "connection refused" in str(raised.value)
    assert "kepler-secret-token" not in str(raised.value)


def test_the_same_words_as_a_check_for_a_refusal():
    """A 403 reads the same on the apply path as on a check (one mapper)."""
    assert str(classify(ApiException(status=403, reason="Forbidden"), "apply x")) == str(
        for_status(403, "Forbidden", "apply x")
    )
