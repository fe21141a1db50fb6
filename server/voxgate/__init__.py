"""voxgate: a gRPC gateway for speech synthesis and text generation."""

__version__ = "0.1.0"
