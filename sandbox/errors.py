"""Why a learner's cluster could not be read.

Messages are one line meant for the learner or an operator. They never contain a bearer
token, a client key or kubeconfig contents: only the server URL, the resource and the
HTTP status or error class.
"""

from __future__ import annotations


class ClusterError(Exception):
    """The cluster answered, but not with what we asked for (5xx, 404 on a kind, bad JSON),
    or the kubeconfig could not be used."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split())[:300])


class ClusterUnreachable(ClusterError):
    """No answer at all: connection refused or reset, DNS, TLS handshake."""


class ClusterForbidden(ClusterError):
    """The credentials were refused (401) or lack permission (403)."""


class ClusterTimeout(ClusterError):
    """The cluster did not answer within the allowed time."""


# --- the one mapping from what went wrong to one of ours -----------------------------------


def for_status(code: int, reason: str, what: str) -> ClusterError:
    """The error for a non-2xx answer: 401/403 refused credentials, 504 a timeout."""
    if code in (401, 403):
        return ClusterForbidden(f"{what}: {code} {reason}")
    if code == 504:
        return ClusterTimeout(f"{what}: {code} {reason}")
    return ClusterError(f"{what}: {code} {reason}")


def for_transport(exc: BaseException | None, what: str,
                  timeout: float | tuple[float, float] | None = None) -> ClusterError:  # fmt: skip
    """A transport failure (stdlib, urllib3 or h11) as one of ours: only the URL and the
    error class, never a credential. Used by the event-loop reads and watches
    (:mod:`sandbox.apihttp`) and the official client's reads (:mod:`sandbox.snapshot`)."""
    import socket
    import ssl

    import h11
    import urllib3

    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return ClusterUnreachable(f"{what}: connection refused or host unknown")
    if isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
        if timeout is None:
            return ClusterTimeout(f"{what}: timed out")
        secs = timeout[1] if isinstance(timeout, tuple) else timeout
        return ClusterTimeout(f"{what}: no answer within {secs:g} s")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ClusterUnreachable(f"{what}: TLS certificate not trusted")
    if isinstance(exc, ssl.SSLError | urllib3.exceptions.SSLError):
        return ClusterUnreachable(f"{what}: TLS error (certificate or protocol)")
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return ClusterUnreachable(f"{what}: connection refused or host unknown")
    if isinstance(exc, ValueError):
        return ClusterError(f"{what}: answer is not JSON")
    if isinstance(exc, h11.ProtocolError):
        return ClusterError(f"{what}: malformed HTTP answer")
    return ClusterUnreachable(f"{what}: connection failed ({type(exc).__name__})")
