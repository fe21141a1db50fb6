"""Instrumentation: turns what the server, the pool and the servicers do into spans and metrics.

Each module subscribes to one part (the gRPC server through an interceptor, the pool
through its listener, the servicers through a few calls) and takes its tracer and meter
from a :class:`voxgate.telemetry.Telemetry`. Names come from :mod:`voxgate.telemetry`.
"""
