"""A simulated one-node kind cluster for tests: the API emulator plus controllers, OpenAPI,
admission, strategic merge / server-side apply and Tables, driven by real kubectl."""

from tests.simcluster.cluster import NODE, SimCluster

__all__ = ["NODE", "SimCluster"]
