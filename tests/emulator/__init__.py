"""Kubernetes API emulator and real-shaped object builders for tests and benchmarks."""

from tests.emulator.server import KINDS, Cluster, KubeEmulator, Request, status_object

__all__ = ["KINDS", "Cluster", "KubeEmulator", "Request", "status_object"]
