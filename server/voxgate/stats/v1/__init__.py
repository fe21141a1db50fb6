"""Generated code for protos/voxgate/stats/v1/stats.proto: `make proto` writes the stats_pb2* modules."""
