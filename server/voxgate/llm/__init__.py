"""DashScope text generation over one shared aiohttp session: the request, the SSE parser, the client.

No gRPC here: :mod:`voxgate.service.generation` turns these results and errors into statuses.
"""
