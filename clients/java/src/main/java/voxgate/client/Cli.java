package voxgate.client;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.grpc.StatusRuntimeException;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import voxgate.generation.v1.Generation.GenerateRequest;
import voxgate.generation.v1.Generation.GenerateResponse;
import voxgate.generation.v1.Generation.GenerateStreamRequest;
import voxgate.generation.v1.Generation.GenerateStreamResponse;
import voxgate.generation.v1.Generation.Message;
import voxgate.generation.v1.Generation.Sampling;
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
  static final String SYNTH_USAGE =
      "usage: " + PROG + " synth TEXT [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}]"
          + " [--sample-rate HZ] [--voice VOICE] [--model MODEL] [--rate RATE] [--pitch PITCH]"
          + " [--volume VOLUME] [--timeout SECONDS]";
  static final String GENERATE_USAGE =
      "usage: " + PROG + " generate PROMPT [--stream] [--model MODEL] [--system SYSTEM]"
          + " [--max-tokens N] [--server SERVER] [--timeout SECONDS] [--json]";
  static final String USAGE = SYNTH_USAGE + "\n" + GENERATE_USAGE.replace("usage:", "      ");

  private static final Map<String, AudioFormat> FORMATS =
      Map.of(
          "pcm", AudioFormat.AUDIO_FORMAT_PCM,
          "wav", AudioFormat.AUDIO_FORMAT_WAV,
          "mp3", AudioFormat.AUDIO_FORMAT_MP3,
          "opus", AudioFormat.AUDIO_FORMAT_OPUS);

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

    Duration timeout(double fallbackS) throws UsageError {
      Double seconds = number("--timeout");
      return Duration.ofNanos((long) ((seconds == null ? fallbackS : seconds) * 1e9));
    }
  }

  private int synth(String[] args) throws UsageError, IOException {
    Map<String, String> valued = new HashMap<>();
    for (String name : List.of("--output", "--server", "--format", "--sample-rate", "--voice", "--model",
        "--rate", "--pitch", "--volume", "--timeout")) {
      valued.put(name, name);
    }
    valued.put("-o", "--output");
    Options options = Options.parse(args, valued, List.of());
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
    try (VoxgateClient client = new VoxgateClient(options.get("--server", "127.0.0.1:50051"))) {
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

  private int generate(String[] args) throws UsageError {
    Map<String, String> valued = new HashMap<>();
    for (String name : List.of("--model", "--system", "--max-tokens", "--server", "--timeout")) {
      valued.put(name, name);
    }
    valued.put("--target", "--server");
    Options options = Options.parse(args, valued, List.of("--stream", "--json"));
    if (options.help) {
      out.println(GENERATE_USAGE);
      return 0;
    }
    String prompt = options.positional("prompt");
    Integer maxTokens = options.integer("--max-tokens");
    Duration timeout = options.timeout(120);
    List<Message> messages = new ArrayList<>();
    String system = options.get("--system", "");
    if (!system.isEmpty()) {
      messages.add(Message.newBuilder().setRole("system").setContent(system).build());
    }
    messages.add(Message.newBuilder().setRole("user").setContent(prompt).build());
    Sampling.Builder sampling = Sampling.newBuilder();
    if (maxTokens != null) {
      sampling.setMaxTokens(maxTokens);
    }
    String model = options.get("--model", "");
    boolean json = options.flag("--json");
    try (VoxgateClient client = new VoxgateClient(options.get("--server", "127.0.0.1:50051"))) {
      long started = System.nanoTime();
      if (!options.flag("--stream")) {
        GenerateResponse reply = client.generate(
            GenerateRequest.newBuilder().setModel(model).addAllMessages(messages).setSampling(sampling).build(), timeout);
        if (json) {
          out.println(toJson(reply));
        } else {
          out.printf(Locale.ROOT, "%s%n%s%nanswer in %.1f ms (client); %s%n", reply.getText(),
              finishLine(reply.getFinishReason(), reply.getUsage()), millis(Duration.ofNanos(System.nanoTime() - started)),
              origin(reply.getModel(), reply.getRequestId(), reply.getAttempts()));
        }
        return 0;
      }
      GenerateStreamRequest request =
          GenerateStreamRequest.newBuilder().setModel(model).addAllMessages(messages).setSampling(sampling).build();
      long[] firstToken = {0};
      boolean[] partial = {false}; // text printed without its line end yet
      GenerateStreamResponse last;
      try {
        last = client.generateStream(request, timeout, response -> {
          if (firstToken[0] == 0 && !response.getDelta().isEmpty()) {
            firstToken[0] = System.nanoTime() - started;
          }
          // Each piece goes out the moment it arrives: one JSON line per message with --json.
          if (json) {
            out.println(toJson(response));
          } else {
            out.print(response.getDelta());
            out.flush();
            partial[0] |= !response.getDelta().isEmpty();
          }
        });
      } catch (RuntimeException e) {
        if (partial[0]) {
          out.println(); // end the half-printed answer on stdout; the error goes to stderr alone
        }
        throw e;
      }
      if (!json) {
        out.printf(Locale.ROOT, "%n%s%nfirst token %.1f ms (client), %d ms in voxgate; %s%n",
            finishLine(last.getFinishReason(), last.getUsage()), millis(Duration.ofNanos(firstToken[0])),
            last.getTimeToFirstTokenMs(), origin(last.getModel(), last.getRequestId(), last.getAttempts()));
      }
      return 0;
    }
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

  private static String finishLine(String finishReason, Usage usage) {
    return String.format(Locale.ROOT, "finish %s; usage %d in + %d out = %d tokens",
        finishReason, usage.getInputTokens(), usage.getOutputTokens(), usage.getTotalTokens());
  }

  private static String origin(String model, String requestId, int attempts) {
    return String.format(Locale.ROOT, "model %s, request %s, %d attempt(s)", model, requestId, attempts);
  }

  private static double millis(Duration duration) {
    return duration.toNanos() / 1e6;
  }
}
