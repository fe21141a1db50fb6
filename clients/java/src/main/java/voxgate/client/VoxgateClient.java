package voxgate.client;

import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import voxgate.generation.v1.Generation.GenerateRequest;
import voxgate.generation.v1.Generation.GenerateResponse;
import voxgate.generation.v1.Generation.GenerateStreamRequest;
import voxgate.generation.v1.Generation.GenerateStreamResponse;
import voxgate.generation.v1.GenerationServiceGrpc;
import voxgate.speech.v1.Speech.AudioFormat;
import voxgate.speech.v1.Speech.SynthesisSummary;
import voxgate.speech.v1.Speech.SynthesizeRequest;
import voxgate.speech.v1.Speech.SynthesizeResponse;
import voxgate.speech.v1.SpeechServiceGrpc;

/**
 * A small voxgate client for Java, on grpc-java and the code protoc generates from the
 * repository's protos.
 *
 * <pre>{@code
 * try (VoxgateClient client = new VoxgateClient("127.0.0.1:50051")) {
 *   SynthesisResult result = client.synthesizeToFile(
 *       SynthesizeRequest.newBuilder().setText("Hello").build(), Path.of("hello.wav"), Duration.ofSeconds(30));
 *   System.out.println(result.summary().getFirstPacketDelayMs());
 * }
 * }</pre>
 *
 * <p>One channel carries both services, with the service config of clients/service_config.json
 * (round_robin over every address the target resolves to, a retryPolicy for UNAVAILABLE before
 * any response). Every call has a deadline: the one given, or {@link #DEFAULT_TIMEOUT}.
 * {@link #VoxgateClient(String, Security)} adds a caller key and TLS.
 * Failures are grpc-java's {@link StatusRuntimeException}; {@link #describe} formats one as
 * {@code "INVALID_ARGUMENT: text: must not be empty"}.
 */
public final class VoxgateClient implements AutoCloseable {
  /** The deadline of a call given none. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);

  static final int WAV_HEADER_BYTES = 44;

  private final ManagedChannel channel;
  private final SpeechServiceGrpc.SpeechServiceBlockingStub speech;
  private final GenerationServiceGrpc.GenerationServiceBlockingStub generation;

  /** A plaintext channel to {@code target} ("127.0.0.1:50051", "dns:///voxgate-headless:50051"). */
  public VoxgateClient(String target) {
    this(channelBuilder(target).build());
  }

  /**
   * A channel to {@code target} with a caller key and/or TLS ({@link Security}, docs/security.md).
   *
   * @throws IOException a CA, certificate or key file is missing or unusable
   */
  public VoxgateClient(String target, Security security) throws IOException {
    this(channelBuilder(target, security).build());
  }

  /** A client on a channel the caller built (e.g. from {@link #channelBuilder}); closes it on close. */
  public VoxgateClient(ManagedChannel channel) {
    this.channel = channel;
    this.speech = SpeechServiceGrpc.newBlockingStub(channel);
    this.generation = GenerationServiceGrpc.newBlockingStub(channel);
  }

  /** A plaintext channel builder for {@code target} with {@link #defaultServiceConfig} and retries on. */
  public static ManagedChannelBuilder<?> channelBuilder(String target) {
    return ManagedChannelBuilder.forTarget(target)
        .usePlaintext()
        .defaultServiceConfig(defaultServiceConfig())
        .enableRetry();
  }

  /**
   * {@link #channelBuilder(String)} with {@code security}: Netty with TLS when it asks for TLS, the
   * caller key on every call.
   *
   * @throws IOException a CA, certificate or key file is missing or unusable
   */
  public static ManagedChannelBuilder<?> channelBuilder(String target, Security security) throws IOException {
    return security.channelBuilder(target).defaultServiceConfig(defaultServiceConfig()).enableRetry();
  }

  /** clients/service_config.json, packed into the jar by clients/java/build.sh, as grpc-java wants it. */
  public static Map<String, ?> defaultServiceConfig() {
    try (InputStream in = VoxgateClient.class.getResourceAsStream("service_config.json")) {
      if (in == null) {
        throw new IllegalStateException("service_config.json is not on the classpath beside VoxgateClient");
      }
      String json = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      // Gson reads numbers as Double and arrays as Lists: the JSON types grpc-java expects.
      return new Gson().fromJson(json, new TypeToken<Map<String, Object>>() {}.getType());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public void close() {
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** {@code "CODE: description"} for a gRPC status error, the message otherwise. */
  public static String describe(Throwable error) {
    if (error instanceof StatusRuntimeException) {
      Status status = ((StatusRuntimeException) error).getStatus();
      String description = status.getDescription();
      return status.getCode().name() + ": " + (description == null ? "" : description);
    }
    return String.valueOf(error.getMessage() != null ? error.getMessage() : error);
  }

  /** The stream ended with OK but without its final message: the result may be incomplete. */
  public static final class IncompleteStreamException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    IncompleteStreamException(String message) {
      super(message);
    }
  }

  /** What a finished synthesis returns. */
  public record SynthesisResult(
      SynthesisSummary summary, long audioBytes, Duration clientFirstPacket, Duration total) {}

  /**
   * Write each audio chunk to {@code sink} as it arrives; return the summary with client timings.
   *
   * @throws StatusRuntimeException the call failed
   * @throws IncompleteStreamException the stream ended OK but without its summary
   * @throws IOException writing to {@code sink} failed (the call is cancelled)
   */
  public SynthesisResult synthesize(SynthesizeRequest request, OutputStream sink, Duration timeout)
      throws IOException {
    long started = System.nanoTime();
    long firstPacket = 0;
    long audioBytes = 0;
    SynthesisSummary summary = null;
    try (ResponseStream<SynthesizeResponse> stream =
        new ResponseStream<>(() -> withDeadline(speech, timeout).synthesize(request))) {
      while (stream.hasNext()) {
        SynthesizeResponse response = stream.next();
        if (response.getContentCase() == SynthesizeResponse.ContentCase.SUMMARY) {
          summary = response.getSummary();
          continue;
        }
        if (audioBytes == 0) {
          firstPacket = System.nanoTime() - started;
        }
        response.getAudio().writeTo(sink);
        audioBytes += response.getAudio().size();
      }
    }
    if (summary == null) {
      throw new IncompleteStreamException("stream ended without a summary");
    }
    return new SynthesisResult(
        summary, audioBytes, Duration.ofNanos(firstPacket), Duration.ofNanos(System.nanoTime() - started));
  }

  /**
   * Stream the audio into {@code path}; a WAV file gets the sizes of its streaming header
   * (0xFFFFFFFF while streaming) patched at the end. If the call fails, {@code path} is
   * removed: a short clip never stays behind looking whole.
   */
  public SynthesisResult synthesizeToFile(SynthesizeRequest request, Path path, Duration timeout)
      throws IOException {
    boolean done = false;
    try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw")) {
      file.setLength(0);
      SynthesisResult result = synthesize(request, new FileSink(file), timeout);
      if (result.summary().getFormat() == AudioFormat.AUDIO_FORMAT_WAV
          && result.audioBytes() >= WAV_HEADER_BYTES) {
        patchWavSizes(file, result.audioBytes());
      }
      done = true;
      return result;
    } finally {
      if (!done) {
        Files.deleteIfExists(path);
      }
    }
  }

  /** The whole answer at once. */
  public GenerateResponse generate(GenerateRequest request, Duration timeout) {
    return withDeadline(generation, timeout).generate(request);
  }

  /**
   * Call {@code onMessage} with each message as it arrives ({@code getDelta()} is the new text)
   * and return the last one, which carries the finish reason, usage and time to first token.
   */
  public GenerateStreamResponse generateStream(
      GenerateStreamRequest request, Duration timeout, Consumer<GenerateStreamResponse> onMessage) {
    try (ResponseStream<GenerateStreamResponse> stream = generateStream(request, timeout)) {
      GenerateStreamResponse last = null;
      while (stream.hasNext()) {
        last = stream.next();
        onMessage.accept(last);
      }
      if (last == null || last.getFinishReason().isEmpty()) {
        throw new IncompleteStreamException("stream ended without a finish_reason");
      }
      return last;
    }
  }

  /**
   * The messages as an iterator; close it (try-with-resources) to cancel the call if you stop
   * early. {@code next()} throws {@link StatusRuntimeException} when the call fails.
   */
  public ResponseStream<GenerateStreamResponse> generateStream(GenerateStreamRequest request, Duration timeout) {
    return new ResponseStream<>(() -> withDeadline(generation, timeout).generateStream(request));
  }

  private static <S extends io.grpc.stub.AbstractStub<S>> S withDeadline(S stub, Duration timeout) {
    Duration deadline = timeout == null ? DEFAULT_TIMEOUT : timeout;
    return stub.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
  }

  /**
   * A server stream as an iterator, started in a cancellable gRPC context: {@link #close}
   * cancels the call (a no-op once it ended), so the server stops work the caller dropped.
   */
  public static final class ResponseStream<T> implements Iterator<T>, AutoCloseable {
    private final Context.CancellableContext context = Context.current().withCancellation();
    private final Iterator<T> responses;

    ResponseStream(java.util.function.Supplier<Iterator<T>> start) {
      Iterator<T> started;
      try {
        started = context.call(start::get);
      } catch (RuntimeException e) {
        context.cancel(e);
        throw e;
      } catch (Exception e) {
        context.cancel(e);
        throw new IllegalStateException(e);
      }
      this.responses = started;
    }

    @Override
    public boolean hasNext() {
      return responses.hasNext();
    }

    @Override
    public T next() {
      if (!hasNext()) {
        throw new NoSuchElementException();
      }
      return responses.next();
    }

    @Override
    public void close() {
      context.cancel(null);
    }
  }

  /** Writes at the file's position; the file stays open for the size patch. */
  private static final class FileSink extends OutputStream {
    private final RandomAccessFile file;

    FileSink(RandomAccessFile file) {
      this.file = file;
    }

    @Override
    public void write(int b) throws IOException {
      file.write(b);
    }

    @Override
    public void write(byte[] bytes, int offset, int length) throws IOException {
      file.write(bytes, offset, length);
    }
  }

  /** Replace the 0xFFFFFFFF sizes of a streamed RIFF/WAVE header with the real ones. */
  static void patchWavSizes(RandomAccessFile file, long totalBytes) throws IOException {
    file.seek(4);
    file.writeInt(Integer.reverseBytes((int) (totalBytes - 8))); // RIFF chunk size, little-endian
    file.seek(40);
    file.writeInt(Integer.reverseBytes((int) (totalBytes - WAV_HEADER_BYTES))); // data chunk size
    file.seek(file.length());
  }
}
