"""grpc's interceptor base classes with their type arguments.

grpc-stubs makes them generic in (request, response), but grpc's own classes are not
subscriptable at run time, so a class cannot derive from ``grpc.ServerInterceptor[Any,
Any]``: it derives from these names, which are the parameterised classes for mypy and
the plain grpc classes when the code runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    ServerInterceptor = grpc.ServerInterceptor[Any, Any]
    UnaryUnaryClientInterceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
    UnaryStreamClientInterceptor = grpc.UnaryStreamClientInterceptor[Any, Any]
    StreamUnaryClientInterceptor = grpc.StreamUnaryClientInterceptor[Any, Any]
    StreamStreamClientInterceptor = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.ServerInterceptor
    UnaryUnaryClientInterceptor = grpc.UnaryUnaryClientInterceptor
    UnaryStreamClientInterceptor = grpc.UnaryStreamClientInterceptor
    StreamUnaryClientInterceptor = grpc.StreamUnaryClientInterceptor
    StreamStreamClientInterceptor = grpc.StreamStreamClientInterceptor
