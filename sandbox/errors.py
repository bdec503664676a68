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
