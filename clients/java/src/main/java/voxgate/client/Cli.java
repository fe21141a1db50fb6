package voxgate.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.grpc.StatusRuntimeException;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import voxgate.generation.v1.Generation.ContentPart;
import voxgate.generation.v1.Generation.GenerateRequest;
import voxgate.generation.v1.Generation.GenerateResponse;
import voxgate.generation.v1.Generation.GenerateStreamRequest;
import voxgate.generation.v1.Generation.GenerateStreamResponse;
import voxgate.generation.v1.Generation.Message;
import voxgate.generation.v1.Generation.Sampling;
import voxgate.generation.v1.Generation.Tool;
import voxgate.generation.v1.Generation.ToolCall;
import voxgate.generation.v1.Generation.Usage;
import voxgate.speech.v1.Speech.AudioFormat;
import voxgate.speech.v1.Speech.SynthesisSummary;
import voxgate.speech.v1.Speech.SynthesizeRequest;

/**
 * voxgate-java: the same commands, flags, output and exit status as {@code voxgate synth} and
 * {@code voxgate generate} (server/voxgate/cli.py), plus {@code generate --json}.
 *
 * <p>Exit status: 0 done, 1 the call failed (the gRPC status is printed), 2 bad usage.
 */
public final class Cli {
  static final String PROG = "voxgate-java";
  static final String CONNECTION_USAGE = " [--token KEY] [--tls] [--ca-file FILE] [--cert FILE] [--key FILE]";
  static final String SYNTH_USAGE =
      "usage: " + PROG + " synth TEXT [-o FILE] [--server HOST:PORT] [--format {mp3,opus,pcm,wav}]"
          + " [--sample-rate HZ] [--voice VOICE] [--model MODEL] [--rate FACTOR] [--pitch FACTOR]"
          + " [--volume N] [--timeout SECONDS]" + CONNECTION_USAGE;
  static final String GENERATE_USAGE =
      "usage: " + PROG + " generate PROMPT [--stream] [--model MODEL] [--system TEXT] [--max-tokens N]"
          + " [--image FILE_OR_URL] [--think] [--tool NAME[=JSON_SCHEMA]] [--tool-choice CHOICE]"
          + " [--server HOST:PORT] [--timeout SECONDS] [--json]" + CONNECTION_USAGE;
  static final String USAGE = SYNTH_USAGE + "\n" + GENERATE_USAGE.replace("usage:", "      ");

  private static final Map<String, AudioFormat> FORMATS =
      Map.of(
          "pcm", AudioFormat.AUDIO_FORMAT_PCM,
          "wav", AudioFormat.AUDIO_FORMAT_WAV,
          "mp3", AudioFormat.AUDIO_FORMAT_MP3,
          "opus", AudioFormat.AUDIO_FORMAT_OPUS);

  // Reasoning is prefixed (and dimmed on a terminal), so it never reads as the answer. Java 17
  // cannot tell whether stdout alone is a terminal (System.console() asks of stdin too): the
  // launcher bin/voxgate-java tells, in voxgate.stdout.tty.
  private static final boolean DIM =
      Boolean.parseBoolean(System.getProperty("voxgate.stdout.tty", String.valueOf(System.console() != null)))
          && (System.getenv("NO_COLOR") == null || System.getenv("NO_COLOR").isEmpty());
  static final String THINKING_START = (DIM ? "\u001b[2m" : "") + "thinking: ";
  static final String THINKING_END = DIM ? "\u001b[0m" : "";

  private final PrintStream out;
  private final PrintStream err;

  Cli(PrintStream out, PrintStream err) {
    this.out = out;
    this.err = err;
  }

  public static void main(String[] args) {
    // UTF-8 whatever the locale, as Python and Node print; autoflush, so streamed text shows at once.
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);
    int code = new Cli(out, err).run(args);
    out.flush();
    System.exit(code);
  }

  /** Bad command-line input: exit status 2, the command's usage first (as argparse does). */
  static final class UsageError extends Exception {
    private static final long serialVersionUID = 1L;

    UsageError(String message) {
      super(message);
    }
  }

  int run(String[] args) {
    if (args.length == 0 || !(args[0].equals("synth") || args[0].equals("generate"))) {
      if (args.length > 0 && (args[0].equals("-h") || args[0].equals("--help"))) {
        out.println(USAGE);
        return 0;
      }
      err.println(USAGE);
      return 2;
    }
    String command = args[0];
    String usage = command.equals("synth") ? SYNTH_USAGE : GENERATE_USAGE;
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    try {
      return command.equals("synth") ? synth(rest) : generate(rest);
    } catch (UsageError e) {
      err.println(usage);
      err.println(PROG + " " + command + ": error: " + e.getMessage());
      return 2;
    } catch (StatusRuntimeException | VoxgateClient.IncompleteStreamException | IOException e) {
      err.println(PROG + " " + command + ": " + VoxgateClient.describe(e));
      return 1;
    }
  }

  /** Options before or after the one positional argument, "--name value" or "--name=value". */
  static final class Options {
    final Map<String, String> values = new HashMap<>();
    final Map<String, List<String>> repeated = new HashMap<>(); // every value of each option, in order
    final List<String> positionals = new ArrayList<>();
    boolean help;

    /** {@code valued}: option names that take a value (aliases map to the first); {@code flags}: the others. */
    static Options parse(String[] args, Map<String, String> valued, List<String> flags) throws UsageError {
      Options options = new Options();
      for (int i = 0; i < args.length; i++) {
        String arg = args[i];
        if (arg.equals("--")) {
          options.positionals.addAll(List.of(args).subList(i + 1, args.length));
          break;
        }
        if (arg.equals("-h") || arg.equals("--help")) {
          options.help = true;
          continue;
        }
        if (!arg.startsWith("-") || arg.equals("-")) {
          options.positionals.add(arg);
          continue;
        }
        String name = arg;
        String value = null;
        int equals = arg.indexOf('=');
        if (arg.startsWith("--") && equals > 0) {
          name = arg.substring(0, equals);
          value = arg.substring(equals + 1);
        } else if (!arg.startsWith("--") && arg.length() > 2) {
          name = arg.substring(0, 2); // -oFILE
          value = arg.substring(2);
        }
        if (flags.contains(name) && value == null) {
          options.values.put(name, "true");
        } else if (valued.containsKey(name)) {
          if (value == null) {
            if (i + 1 >= args.length) {
              throw new UsageError("argument " + name + ": expected one argument");
            }
            value = args[++i];
          }
          options.values.put(valued.get(name), value);
          options.repeated.computeIfAbsent(valued.get(name), key -> new ArrayList<>()).add(value);
        } else {
          throw new UsageError("unrecognized arguments: " + arg);
        }
      }
      return options;
    }

    String get(String name, String fallback) {
      return values.getOrDefault(name, fallback);
    }

    boolean flag(String name) {
      return values.containsKey(name);
    }

    /** Every value of an option that may be given more than once. */
    List<String> all(String name) {
      return repeated.getOrDefault(name, List.of());
    }

    Integer integer(String name) throws UsageError {
      String value = values.get(name);
      if (value == null) {
        return null;
      }
      try {
        return Integer.valueOf(value.trim());
      } catch (NumberFormatException e) {
        throw new UsageError("argument " + name + ": invalid int value: '" + value + "'");
      }
    }

    Double number(String name) throws UsageError {
      String value = values.get(name);
      if (value == null) {
        return null;
      }
      try {
        return Double.valueOf(value.trim());
      } catch (NumberFormatException e) {
        throw new UsageError("argument " + name + ": invalid float value: '" + value + "'");
      }
    }

    String positional(String what) throws UsageError {
      if (positionals.isEmpty()) {
        throw new UsageError("the following arguments are required: " + what);
      }
      if (positionals.size() > 1) {
        throw new UsageError("unrecognized arguments: " + String.join(" ", positionals.subList(1, positionals.size())));
      }
      return positionals.get(0);
    }

    /** --token (default $VOXGATE_TOKEN), --tls, --ca-file, --cert and --key (docs/security.md). */
    Security security() throws UsageError {
      String token = values.containsKey("--token") ? values.get("--token") : System.getenv("VOXGATE_TOKEN");
      if (values.containsKey("--cert") != values.containsKey("--key")) {
        throw new UsageError("--cert and --key go together");
      }
      return new Security(token, flag("--tls"), path("--ca-file"), path("--cert"), path("--key"));
    }

    private Path path(String name) {
      String value = values.get(name);
      return value == null || value.isEmpty() ? null : Path.of(value);
    }

    Duration timeout(double fallbackS) throws UsageError {
      Double seconds = number("--timeout");
      return Duration.ofNanos((long) ((seconds == null ? fallbackS : seconds) * 1e9));
    }
  }

  private int synth(String[] args) throws UsageError, IOException {
    Map<String, String> valued = new HashMap<>();
    for (String name : List.of("--output", "--server", "--format", "--sample-rate", "--voice", "--model",
        "--rate", "--pitch", "--volume", "--timeout", "--token", "--ca-file", "--cert", "--key")) {
      valued.put(name, name);
    }
    valued.put("-o", "--output");
    Options options = Options.parse(args, valued, List.of("--tls"));
    if (options.help) {
      out.println(SYNTH_USAGE);
      return 0;
    }
    String text = options.positional("text");
    String output = options.get("--output", "out.wav");
    String format = options.values.get("--format");
    if (format != null && !FORMATS.containsKey(format)) {
      throw new UsageError("argument --format: invalid choice: '" + format + "' (choose from 'mp3', 'opus', 'pcm', 'wav')");
    }
    Integer sampleRate = options.integer("--sample-rate");
    Double rate = options.number("--rate");
    Double pitch = options.number("--pitch");
    Integer volume = options.integer("--volume");
    Duration timeout = options.timeout(60);
    Security security = options.security();
    if (format == null) {
      format = suffix(output);
    }
    if (!FORMATS.containsKey(format)) {
      err.println(PROG + " synth: cannot tell the format from " + pythonRepr(output) + "; pass --format");
      return 2;
    }
    SynthesizeRequest.Builder request = SynthesizeRequest.newBuilder()
        .setText(text)
        .setModel(options.get("--model", ""))
        .setVoice(options.get("--voice", ""))
        .setFormat(FORMATS.get(format))
        .setSampleRate(sampleRate == null ? 0 : sampleRate);
    if (rate != null) {
      request.setRate(rate.floatValue());
    }
    if (pitch != null) {
      request.setPitch(pitch.floatValue());
    }
    if (volume != null) {
      request.setVolume(volume);
    }
    VoxgateClient.SynthesisResult result;
    try (VoxgateClient client = new VoxgateClient(options.get("--server", "127.0.0.1:50051"), security)) {
      result = client.synthesizeToFile(request.build(), Path.of(output), timeout);
    }
    SynthesisSummary s = result.summary();
    out.printf(Locale.ROOT, "wrote %s: %d bytes %s at %d Hz%n", output, result.audioBytes(), format, s.getSampleRate());
    out.printf(Locale.ROOT, "first packet %.1f ms (client), %.1f ms in voxgate, %.1f ms upstream%n",
        millis(result.clientFirstPacket()), s.getFirstPacketDelayMs(), s.getUpstreamFirstPacketDelayMs());
    out.printf(Locale.ROOT, "connection %s (age %.1f s, pool wait %.1f ms), task %s, %d characters, %d attempt(s)%n",
        s.getConnectionReused() ? "reused" : "new", s.getConnectionAgeMs() / 1000, s.getPoolWaitMs(),
        s.getTaskId(), s.getCharacters(), s.getAttempts());
    return 0;
  }

  private int generate(String[] args) throws UsageError, IOException {
    Map<String, String> valued = new HashMap<>();
    for (String name : List.of("--model", "--system", "--max-tokens", "--image", "--tool", "--tool-choice",
        "--server", "--timeout", "--token", "--ca-file", "--cert", "--key")) {
      valued.put(name, name);
    }
    valued.put("--target", "--server");
    Options options = Options.parse(args, valued, List.of("--stream", "--think", "--json", "--tls"));
    if (options.help) {
      out.println(GENERATE_USAGE);
      return 0;
    }
    String prompt = options.positional("prompt");
    Integer maxTokens = options.integer("--max-tokens");
    Duration timeout = options.timeout(120);
    Security security = options.security();
    List<Message> messages = new ArrayList<>();
    String system = options.get("--system", "");
    if (!system.isEmpty()) {
      messages.add(Message.newBuilder().setRole("system").setContent(system).build());
    }
    try {
      messages.add(userMessage(prompt, options.all("--image")));
    } catch (IOException e) {
      err.println(PROG + " generate: --image: " + e.getMessage());
      return 2;
    }
    Sampling.Builder sampling = Sampling.newBuilder();
    if (maxTokens != null) {
      sampling.setMaxTokens(maxTokens);
    }
    if (options.flag("--think")) {
      sampling.setEnableThinking(true);
    }
    List<Tool> tools = new ArrayList<>();
    for (String spec : options.all("--tool")) {
      int equals = spec.indexOf('=');
      tools.add(equals < 0
          ? Tool.newBuilder().setName(spec).build()
          : Tool.newBuilder().setName(spec.substring(0, equals)).setParameters(spec.substring(equals + 1)).build());
    }
    String toolChoice = options.get("--tool-choice", "");
    String model = options.get("--model", "");
    boolean json = options.flag("--json");
    try (VoxgateClient client = new VoxgateClient(options.get("--server", "127.0.0.1:50051"), security)) {
      long started = System.nanoTime();
      if (!options.flag("--stream")) {
        GenerateResponse reply = client.generate(GenerateRequest.newBuilder().setModel(model).addAllMessages(messages)
            .setSampling(sampling).addAllTools(tools).setToolChoice(toolChoice).build(), timeout);
        if (json) {
          out.println(toJson(reply));
        } else {
          if (!reply.getReasoning().isEmpty()) {
            out.println(THINKING_START + reply.getReasoning() + THINKING_END);
          }
          out.printf(Locale.ROOT, "%s%s%n%s%nanswer in %.1f ms (client); %s%n", reply.getText(),
              toolCallLines(reply.getToolCallsList()), finishLine(reply.getFinishReason(), reply.getUsage()),
              millis(Duration.ofNanos(System.nanoTime() - started)),
              origin(reply.getModel(), reply.getRequestId(), reply.getAttempts()));
        }
        return 0;
      }
      GenerateStreamRequest request = GenerateStreamRequest.newBuilder().setModel(model).addAllMessages(messages)
          .setSampling(sampling).addAllTools(tools).setToolChoice(toolChoice).build();
      long[] firstToken = {0};
      boolean[] thinking = {false}; // reasoning printed, its line not ended yet
      GenerateStreamResponse last;
      try {
        last = client.generateStream(request, timeout, response -> {
          String delta = response.getDelta();
          String reasoning = response.getReasoningDelta();
          if (firstToken[0] == 0 && !(delta.isEmpty() && reasoning.isEmpty())) {
            firstToken[0] = System.nanoTime() - started;
          }
          // Each piece goes out the moment it arrives: one JSON line per message with --json.
          if (json) {
            out.println(toJson(response));
            return;
          }
          if (!reasoning.isEmpty()) {
            out.print((thinking[0] ? "" : THINKING_START) + reasoning);
            thinking[0] = true;
          }
          if (!delta.isEmpty()) {
            out.print((thinking[0] ? THINKING_END + "\n" : "") + delta);
            thinking[0] = false;
          }
          out.flush();
        });
      } catch (RuntimeException e) {
        if (!json && firstToken[0] != 0) {
          // End the half-printed answer on stdout; the error goes to stderr alone.
          out.println(thinking[0] ? THINKING_END : "");
        }
        throw e;
      }
      if (!json) {
        String answer = "";
        int firstAnswer = last.getTimeToFirstAnswerTokenMs();
        if (firstAnswer != 0 && firstAnswer != last.getTimeToFirstTokenMs()) {
          answer = ", first answer token " + firstAnswer + " ms in voxgate";
        }
        out.printf(Locale.ROOT, "%s%s%n%s%nfirst token %.1f ms (client), %d ms in voxgate%s; %s%n",
            thinking[0] ? THINKING_END : "", toolCallLines(last.getToolCallsList()),
            finishLine(last.getFinishReason(), last.getUsage()), millis(Duration.ofNanos(firstToken[0])),
            last.getTimeToFirstTokenMs(), answer, origin(last.getModel(), last.getRequestId(), last.getAttempts()));
      }
      return 0;
    }
  }

  /** The prompt, after its images: files are read and sent inline, URLs as they are. */
  static Message userMessage(String prompt, List<String> images) throws IOException {
    if (images.isEmpty()) {
      return Message.newBuilder().setRole("user").setContent(prompt).build();
    }
    Message.Builder message = Message.newBuilder().setRole("user");
    for (String image : images) {
      if (image.startsWith("http://") || image.startsWith("https://") || image.startsWith("oss://")
          || image.startsWith("data:")) {
        message.addParts(ContentPart.newBuilder().setImageUrl(image));
      } else {
        message.addParts(ContentPart.newBuilder().setImage(ByteString.copyFrom(readImage(image))));
      }
    }
    return message.addParts(ContentPart.newBuilder().setText(prompt)).build();
  }

  /**
   * The file's bytes; failing, an IOException worded as Python's OSError prints:
   * "[Errno 2] No such file or directory: 'a.png'".
   */
  static byte[] readImage(String file) throws IOException {
    Path path = Path.of(file);
    int errno;
    String reason;
    try {
      if (Files.isDirectory(path)) {
        errno = 21;
        reason = "Is a directory";
      } else {
        return Files.readAllBytes(path);
      }
    } catch (NoSuchFileException e) {
      errno = 2;
      reason = "No such file or directory";
    } catch (AccessDeniedException e) {
      errno = 13;
      reason = "Permission denied";
    }
    throw new IOException("[Errno " + errno + "] " + reason + ": " + pythonRepr(file));
  }

  static String suffix(String output) {
    String name = Path.of(output).getFileName() == null ? "" : Path.of(output).getFileName().toString();
    int dot = name.lastIndexOf('.');
    // As Python's os.path.splitext: a leading dot (".wav") is a name, not a suffix.
    String suffix = dot > 0 && name.substring(0, dot).replace(".", "").length() > 0 ? name.substring(dot + 1) : "";
    suffix = suffix.toLowerCase(Locale.ROOT);
    return suffix.isEmpty() ? "wav" : suffix;
  }

  /** A string quoted the way Python's repr() quotes it, for messages that match `voxgate synth`. */
  static String pythonRepr(String text) {
    char quote = text.indexOf('\'') >= 0 && text.indexOf('"') < 0 ? '"' : '\'';
    StringBuilder quoted = new StringBuilder().append(quote);
    for (char c : text.toCharArray()) {
      if (c == '\\' || c == quote) {
        quoted.append('\\');
      }
      quoted.append(c);
    }
    return quoted.append(quote).toString();
  }

  private static String toJson(MessageOrBuilder message) {
    try {
      return JsonFormat.printer().omittingInsignificantWhitespace().print(message);
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String toolCallLines(List<ToolCall> calls) {
    StringBuilder lines = new StringBuilder();
    for (ToolCall call : calls) {
      lines.append("\ntool call: ").append(call.getName()).append('(').append(call.getArguments()).append(") id ")
          .append(call.getId());
    }
    return lines.toString();
  }

  private static String finishLine(String finishReason, Usage usage) {
    String reasoning = usage.getReasoningTokens() == 0 ? "" : " (" + usage.getReasoningTokens() + " reasoning)";
    return String.format(Locale.ROOT, "finish %s; usage %d in + %d%s out = %d tokens",
        finishReason, usage.getInputTokens(), usage.getOutputTokens(), reasoning, usage.getTotalTokens());
  }

  private static String origin(String model, String requestId, int attempts) {
    return String.format(Locale.ROOT, "model %s, request %s, %d attempt(s)", model, requestId, attempts);
  }

  private static double millis(Duration duration) {
    return duration.toNanos() / 1e6;
  }
}
