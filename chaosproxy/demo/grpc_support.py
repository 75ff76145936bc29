"""grpcio for the gRPC demo, or a clear error saying what to install: it is the `grpc` extra,
and the rest of the package (the proxy included) runs without it."""

from __future__ import annotations

from chaosproxy.common.errors import ChaosProxyError

MISSING = "the gRPC demo needs grpcio: pip install 'chaosproxy[grpc]'"

try:
    import grpc
    import grpc.aio as grpc_aio
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ChaosProxyError(MISSING) from e

__all__ = ["MISSING", "grpc", "grpc_aio"]
