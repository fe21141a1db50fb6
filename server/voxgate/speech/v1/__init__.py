"""Generated code for protos/voxgate/speech/v1/speech.proto: `make proto` writes the speech_pb2* modules."""
