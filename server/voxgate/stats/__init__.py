"""voxgate.stats: generated gRPC/protobuf code for the stats API, one package per version."""
