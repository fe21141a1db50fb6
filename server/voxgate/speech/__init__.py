"""voxgate.speech: generated gRPC/protobuf code for the speech API, one package per version."""
