import io.grpc.StatusRuntimeException;
import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.time.Duration;
import voxgate.client.VoxgateClient;
import voxgate.generation.v1.Generation.GenerateRequest;
import voxgate.generation.v1.Generation.GenerateStreamRequest;
import voxgate.generation.v1.Generation.GenerateStreamResponse;
import voxgate.generation.v1.Generation.Message;
import voxgate.speech.v1.Speech.AudioFormat;
import voxgate.speech.v1.Speech.SynthesizeRequest;

/**
 * The library in one page (docs/clients-java.md shows it; clients/java/build.sh compiles it and
 * tests/integration/clients/test_clients.py runs it). Usage: HelloVoxgate HOST:PORT OUT.wav
 */
public final class HelloVoxgate {
  private HelloVoxgate() {}

  public static void main(String[] args) throws Exception {
    Duration deadline = Duration.ofSeconds(30);
    try (VoxgateClient client = new VoxgateClient(args[0])) {
      // Audio into a file, chunk by chunk; a complete WAV once it returns, no file if it throws.
      SynthesizeRequest speak = SynthesizeRequest.newBuilder().setText("Hello from Java.").build();
      VoxgateClient.SynthesisResult result = client.synthesizeToFile(speak, Path.of(args[1]), deadline);
      System.out.printf("wav: %d bytes, first packet in voxgate %.1f ms%n",
          result.audioBytes(), result.summary().getFirstPacketDelayMs());

      // Or into any OutputStream (a socket, a servlet response).
      ByteArrayOutputStream pcm = new ByteArrayOutputStream();
      client.synthesize(speak.toBuilder().setFormat(AudioFormat.AUDIO_FORMAT_PCM).build(), pcm, deadline);
      System.out.printf("pcm: %d bytes%n", pcm.size());

      Message hello = Message.newBuilder().setRole("user").setContent("Say hello").build();
      System.out.println("unary: " + client.generate(
          GenerateRequest.newBuilder().addMessages(hello).build(), deadline).getText());

      // Streamed text with a callback, or as an iterator (close it to cancel early).
      GenerateStreamRequest ask = GenerateStreamRequest.newBuilder().addMessages(hello).build();
      StringBuilder text = new StringBuilder();
      GenerateStreamResponse last = client.generateStream(ask, deadline, piece -> text.append(piece.getDelta()));
      System.out.println("callback: " + text + " (" + last.getFinishReason() + ")");
      try (VoxgateClient.ResponseStream<GenerateStreamResponse> pieces = client.generateStream(ask, deadline)) {
        System.out.println("iterator first piece: " + pieces.next().getDelta());
      }

      try {
        client.synthesize(SynthesizeRequest.newBuilder().setText("").build(), new ByteArrayOutputStream(), deadline);
      } catch (StatusRuntimeException e) {
        System.out.println("error: " + VoxgateClient.describe(e)); // INVALID_ARGUMENT: text: must not be empty
      }
    }
  }
}
