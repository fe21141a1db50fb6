// Command voxgate-go calls voxgate from Go:
//
//	voxgate-go synth TEXT [-o out.wav] [--format wav|pcm|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
//	                      [--rate R] [--pitch P] [--volume N] [--timeout SECONDS (default 60)]
//	voxgate-go generate PROMPT [--stream] [--system TEXT] [--model M] [--max-tokens N] [--json]
//	                      [--image FILE_OR_URL]... [--think] [--tool NAME[=JSON_SCHEMA]]... [--tool-choice C]
//	                      [--timeout SECONDS (default 120)]
//	voxgate-go load [--concurrency N | --rate PER_SECOND] [--requests N | --duration SECONDS] [--json] ...
//	                      (a load generator: load.go)
//
// Both take --server HOST:PORT (default 127.0.0.1:50051), and for a voxgate with TLS or caller keys
// --token KEY (default $VOXGATE_TOKEN), --tls, --ca-file FILE, --cert FILE --key FILE
// (docs/security.md). The commands, flags, output and exit
// status are those of `voxgate synth` / `voxgate generate` (plus --json): 0 done, 1 the call
// failed (the gRPC status is printed), 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"voxgate/client"
	generationv1 "voxgate/gen/generation/v1"
	speechv1 "voxgate/gen/speech/v1"
)

const prog = "voxgate-go"

const connectionUsage = " [--token KEY] [--tls] [--ca-file FILE] [--cert FILE] [--key FILE]"

var usages = map[string]string{
	"synth": "usage: " + prog + " synth TEXT [-o FILE] [--server HOST:PORT] [--format {mp3,opus,pcm,wav}]" +
		" [--sample-rate HZ] [--voice VOICE] [--model MODEL] [--rate FACTOR] [--pitch FACTOR] [--volume N]" +
		" [--timeout SECONDS]" + connectionUsage,
	"generate": "usage: " + prog + " generate PROMPT [--stream] [--model MODEL] [--system TEXT] [--max-tokens N]" +
		" [--image FILE_OR_URL] [--think] [--tool NAME[=JSON_SCHEMA]] [--tool-choice CHOICE]" +
		" [--server HOST:PORT] [--timeout SECONDS] [--json]" + connectionUsage,
}

var usage = usages["synth"] + "\n" + strings.Replace(usages["generate"], "usage:", "      ", 1) +
	"\n" + strings.Replace(loadUsage, "usage:", "      ", 1)

func init() { usages["load"] = loadUsage }

var formats = map[string]speechv1.AudioFormat{
	"pcm":  speechv1.AudioFormat_AUDIO_FORMAT_PCM,
	"wav":  speechv1.AudioFormat_AUDIO_FORMAT_WAV,
	"mp3":  speechv1.AudioFormat_AUDIO_FORMAT_MP3,
	"opus": speechv1.AudioFormat_AUDIO_FORMAT_OPUS,
}

// usageError is bad command-line input: exit status 2, the command's usage first (as argparse does).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// optional is a number flag that may be absent: absent and 0 are different requests.
type optional struct {
	name  string
	kind  string // "int" or "float", as argparse's types
	set   bool
	value float64
}

func (o *optional) String() string { return "" }

func (o *optional) Set(text string) error {
	value, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || (o.kind == "int" && value != float64(int64(value))) {
		return usageError{fmt.Sprintf("argument --%s: invalid %s value: '%s'", o.name, o.kind, text)}
	}
	o.set, o.value = true, value
	return nil
}

func newOptional(flags *flag.FlagSet, name, kind, help string) *optional {
	o := &optional{name: name, kind: kind}
	flags.Var(o, name, help)
	return o
}

// common holds the options every command takes.
type common struct {
	server   string
	timeout  *optional
	model    string
	security client.Security
}

func newFlags(name string) (*flag.FlagSet, *common) {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(io.Discard) // main reports errors and usage once, in one format
	flags.Usage = func() {}
	opts := &common{}
	flags.StringVar(&opts.server, "server", "127.0.0.1:50051", "voxgate address")
	opts.timeout = newOptional(flags, "timeout", "float", "deadline in seconds")
	flags.StringVar(&opts.model, "model", "", "model (default: the server's)")
	flags.StringVar(&opts.security.Token, "token", os.Getenv("VOXGATE_TOKEN"), "caller key")
	flags.BoolVar(&opts.security.TLS, "tls", false, "connect with TLS")
	flags.StringVar(&opts.security.CAFile, "ca-file", "", "PEM CA of the server certificate")
	flags.StringVar(&opts.security.CertFile, "cert", "", "PEM client certificate (mutual TLS)")
	flags.StringVar(&opts.security.KeyFile, "key", "", "PEM key of --cert")
	return flags, opts
}

// parse parses flags given before or after the one positional argument, named what.
func parse(flags *flag.FlagSet, args []string, what string) (string, error) {
	var positional []string
	for {
		if err := flags.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", usageError{err.Error()}
		}
		if flags.NArg() == 0 {
			break
		}
		positional = append(positional, flags.Arg(0))
		args = flags.Args()[1:]
	}
	switch {
	case len(positional) == 0:
		return "", usageError{"the following arguments are required: " + what}
	case len(positional) > 1:
		return "", usageError{"unrecognized arguments: " + strings.Join(positional[1:], " ")}
	}
	return positional[0], nil
}

func (opts *common) context(defaultS float64) (context.Context, context.CancelFunc) {
	seconds := defaultS
	if opts.timeout.set {
		seconds = opts.timeout.value
	}
	return context.WithTimeout(context.Background(), time.Duration(seconds*float64(time.Second)))
}

// pythonRepr quotes text as Python's repr() does, so messages match `voxgate synth`'s.
func pythonRepr(text string) string {
	quote := "'"
	if strings.Contains(text, "'") && !strings.Contains(text, "\"") {
		quote = "\""
	}
	escaped := strings.ReplaceAll(strings.ReplaceAll(text, "\\", "\\\\"), quote, "\\"+quote)
	return quote + escaped + quote
}

func synth(args []string) error {
	flags, opts := newFlags("synth")
	var output string
	flags.StringVar(&output, "o", "out.wav", "audio file to write")
	flags.StringVar(&output, "output", "out.wav", "audio file to write")
	format := flags.String("format", "", "pcm, wav, mp3 or opus (default: from the file suffix)")
	sampleRate := newOptional(flags, "sample-rate", "int", "Hz (default: the server's, 22050)")
	voice := flags.String("voice", "", "voice (default: the server's)")
	rate := newOptional(flags, "rate", "float", "speaking rate 0.5-2.0")
	pitch := newOptional(flags, "pitch", "float", "pitch 0.5-2.0")
	volume := newOptional(flags, "volume", "int", "volume 0-100")
	text, err := parse(flags, args, "text")
	if err != nil {
		return err
	}
	formatName := *format
	if _, ok := formats[formatName]; formatName != "" && !ok {
		return usageError{fmt.Sprintf("argument --format: invalid choice: '%s' (choose from 'mp3', 'opus', 'pcm', 'wav')", formatName)}
	}
	if formatName == "" {
		formatName = strings.ToLower(strings.TrimPrefix(filepath.Ext(output), "."))
	}
	if formatName == "" {
		formatName = "wav"
	}
	wire, ok := formats[formatName]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s synth: cannot tell the format from %s; pass --format\n", prog, pythonRepr(output))
		os.Exit(2)
	}
	request := &speechv1.SynthesizeRequest{
		Text: text, Model: opts.model, Voice: *voice, Format: wire, SampleRate: uint32(sampleRate.value),
	}
	if rate.set {
		value := float32(rate.value)
		request.Rate = &value
	}
	if pitch.set {
		value := float32(pitch.value)
		request.Pitch = &value
	}
	if volume.set {
		value := uint32(volume.value)
		request.Volume = &value
	}
	c, err := client.DialWith(opts.server, opts.security)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.context(60)
	defer cancel()
	result, err := c.SynthesizeToFile(ctx, request, output)
	if err != nil {
		return err
	}
	s := result.Summary
	fmt.Printf("wrote %s: %d bytes %s at %d Hz\n", output, result.AudioBytes, formatName, s.SampleRate)
	fmt.Printf("first packet %.1f ms (client), %.1f ms in voxgate, %.1f ms upstream\n",
		milliseconds(result.ClientFirstPacket), s.FirstPacketDelayMs, s.UpstreamFirstPacketDelayMs)
	connection := "new"
	if s.ConnectionReused {
		connection = "reused"
	}
	fmt.Printf("connection %s (age %.1f s, pool wait %.1f ms), task %s, %d characters, %d attempt(s)\n",
		connection, s.ConnectionAgeMs/1000, s.PoolWaitMs, s.TaskId, s.Characters, s.Attempts)
	return nil
}

func generate(args []string) error {
	flags, opts := newFlags("generate")
	flags.StringVar(&opts.server, "target", "127.0.0.1:50051", "voxgate address (as --server)")
	system := flags.String("system", "", "system message")
	maxTokens := newOptional(flags, "max-tokens", "int", "most tokens to generate (default: the model's)")
	stream := flags.Bool("stream", false, "call GenerateStream and print the answer as it is generated")
	jsonLines := flags.Bool("json", false, "print each message as one line of JSON")
	var images, toolSpecs repeated
	flags.Var(&images, "image", "an image to send with the prompt: a file (sent inline) or an http(s)/oss/data URL; repeatable")
	think := flags.Bool("think", false, "thinking mode: print the model's reasoning (prefixed) first")
	flags.Var(&toolSpecs, "tool", "a function the model may call (its parameters as a JSON Schema); repeatable")
	toolChoice := flags.String("tool-choice", "", "auto, none, or a tool's name")
	prompt, err := parse(flags, args, "prompt")
	if err != nil {
		return err
	}
	var messages []*generationv1.Message
	if *system != "" {
		messages = append(messages, &generationv1.Message{Role: "system", Content: *system})
	}
	user, err := userMessage(prompt, images)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s generate: --image: %s\n", prog, describeFileError(err))
		os.Exit(2)
	}
	messages = append(messages, user)
	sampling := &generationv1.Sampling{}
	if maxTokens.set { // 0 too: the server says what is wrong with it
		tokens := uint32(maxTokens.value)
		sampling.MaxTokens = &tokens
	}
	if *think {
		enabled := true
		sampling.EnableThinking = &enabled
	}
	var tools []*generationv1.Tool
	for _, spec := range toolSpecs {
		name, schema, _ := strings.Cut(spec, "=")
		tools = append(tools, &generationv1.Tool{Name: name, Parameters: schema})
	}
	c, err := client.DialWith(opts.server, opts.security)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.context(120)
	defer cancel()
	started := time.Now()
	if !*stream {
		response, err := c.Generate(ctx, &generationv1.GenerateRequest{
			Model: opts.model, Messages: messages, Sampling: sampling, Tools: tools, ToolChoice: *toolChoice,
		})
		if err != nil {
			return err
		}
		if *jsonLines {
			return printJSON(response)
		}
		if response.Reasoning != "" {
			fmt.Println(thinkingStart + response.Reasoning + thinkingEnd)
		}
		fmt.Printf("%s%s\n%s\nanswer in %.1f ms (client); %s\n", response.Text, toolCallLines(response.ToolCalls),
			finishLine(response.FinishReason, response.Usage), milliseconds(time.Since(started)),
			origin(response.Model, response.RequestId, response.Attempts))
		return nil
	}
	var firstToken time.Duration
	thinking := false // reasoning printed, its line not ended yet
	request := &generationv1.GenerateStreamRequest{
		Model: opts.model, Messages: messages, Sampling: sampling, Tools: tools, ToolChoice: *toolChoice,
	}
	last, err := c.GenerateStream(ctx, request, func(response *generationv1.GenerateStreamResponse) error {
		if firstToken == 0 && (response.Delta != "" || response.ReasoningDelta != "") {
			firstToken = time.Since(started)
		}
		// Each piece goes out the moment it arrives (stdout is unbuffered): one JSON line per message with --json.
		if *jsonLines {
			return printJSON(response)
		}
		if response.ReasoningDelta != "" {
			if !thinking {
				fmt.Print(thinkingStart)
			}
			thinking = true
			fmt.Print(response.ReasoningDelta)
		}
		if response.Delta != "" {
			if thinking {
				fmt.Println(thinkingEnd)
			}
			thinking = false
			fmt.Print(response.Delta)
		}
		return nil
	})
	if err != nil {
		if !*jsonLines && firstToken != 0 {
			end := ""
			if thinking {
				end = thinkingEnd
			}
			fmt.Println(end) // end the half-printed answer on stdout; the error is stderr's first line
		}
		return err
	}
	if !*jsonLines {
		if thinking {
			fmt.Print(thinkingEnd)
		}
		answer := ""
		if first := last.TimeToFirstAnswerTokenMs; first != 0 && first != last.TimeToFirstTokenMs {
			answer = fmt.Sprintf(", first answer token %d ms in voxgate", first)
		}
		fmt.Printf("%s\n%s\nfirst token %.1f ms (client), %d ms in voxgate%s; %s\n", toolCallLines(last.ToolCalls),
			finishLine(last.FinishReason, last.Usage), milliseconds(firstToken), last.TimeToFirstTokenMs, answer,
			origin(last.Model, last.RequestId, last.Attempts))
	}
	return nil
}

// repeated collects a flag given more than once.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// Reasoning is prefixed (and dimmed on a terminal), so it never reads as the answer.
var thinkingStart, thinkingEnd = thinkingMarks()

func thinkingMarks() (string, string) {
	info, err := os.Stdout.Stat()
	if err == nil && info.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == "" {
		return "\x1b[2mthinking: ", "\x1b[0m"
	}
	return "thinking: ", ""
}

// userMessage is the prompt, after its images: files are read and sent inline, URLs as they are.
func userMessage(prompt string, images []string) (*generationv1.Message, error) {
	if len(images) == 0 {
		return &generationv1.Message{Role: "user", Content: prompt}, nil
	}
	var parts []*generationv1.ContentPart
	for _, image := range images {
		if strings.HasPrefix(image, "http://") || strings.HasPrefix(image, "https://") ||
			strings.HasPrefix(image, "oss://") || strings.HasPrefix(image, "data:") {
			parts = append(parts, &generationv1.ContentPart{Kind: &generationv1.ContentPart_ImageUrl{ImageUrl: image}})
			continue
		}
		data, err := os.ReadFile(image)
		if err != nil {
			return nil, err
		}
		parts = append(parts, &generationv1.ContentPart{Kind: &generationv1.ContentPart_Image{Image: data}})
	}
	parts = append(parts, &generationv1.ContentPart{Kind: &generationv1.ContentPart_Text{Text: prompt}})
	return &generationv1.Message{Role: "user", Parts: parts}, nil
}

// describeFileError words a failed read as Python's OSError does:
// "[Errno 2] No such file or directory: 'a.png'".
func describeFileError(err error) string {
	var pathErr *fs.PathError
	var errno syscall.Errno
	if !errors.As(err, &pathErr) || !errors.As(err, &errno) {
		return err.Error()
	}
	reason := errno.Error()
	if reason != "" {
		reason = strings.ToUpper(reason[:1]) + reason[1:]
	}
	return fmt.Sprintf("[Errno %d] %s: %s", int(errno), reason, pythonRepr(pathErr.Path))
}

func toolCallLines(calls []*generationv1.ToolCall) string {
	var lines strings.Builder
	for _, call := range calls {
		fmt.Fprintf(&lines, "\ntool call: %s(%s) id %s", call.Name, call.Arguments, call.Id)
	}
	return lines.String()
}

func printJSON(message proto.Message) error {
	line, err := protojson.Marshal(message)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", line)
	return err
}

func finishLine(finishReason string, usage *generationv1.Usage) string {
	reasoning := ""
	if usage.GetReasoningTokens() > 0 {
		reasoning = fmt.Sprintf(" (%d reasoning)", usage.GetReasoningTokens())
	}
	return fmt.Sprintf("finish %s; usage %d in + %d%s out = %d tokens",
		finishReason, usage.GetInputTokens(), usage.GetOutputTokens(), reasoning, usage.GetTotalTokens())
}

func origin(model, requestID string, attempts uint32) string {
	return fmt.Sprintf("model %s, request %s, %d attempt(s)", model, requestID, attempts)
}

func milliseconds(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// enableRetries re-executes the program once with GRPC_GO_RETRY=on. grpc-go before 1.40 (Debian
// bookworm ships 1.33) reads that variable once, when the process starts, and applies a service
// config's retryPolicy only if it is "on"; newer releases retry by default.
func enableRetries() {
	if os.Getenv("GRPC_GO_RETRY") != "" {
		return
	}
	executable, err := os.Executable()
	if err != nil {
		return
	}
	os.Setenv("GRPC_GO_RETRY", "on")
	_ = syscall.Exec(executable, os.Args, os.Environ()) // returns only if it failed: carry on without retries
}

func main() {
	enableRetries()
	commands := map[string]func([]string) error{
		"synth": synth, "generate": generate, "synth-stdin": synthStdin, "speak": speak, "load": load,
	}
	if len(os.Args) == 2 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Println(usage)
		return
	}
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	name := os.Args[1]
	err := commands[name](os.Args[2:])
	var bad usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		fmt.Println(usages[name])
	case errors.As(err, &bad):
		fmt.Fprintf(os.Stderr, "%s\n%s %s: error: %s\n", usages[name], prog, name, bad.msg)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s %s: %s\n", prog, name, client.Describe(err))
		os.Exit(1)
	}
}
