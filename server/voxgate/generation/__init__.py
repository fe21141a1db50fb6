"""voxgate.generation: generated gRPC/protobuf code for the generation API, one package per version."""
