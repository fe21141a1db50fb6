// Command voxgate-go calls voxgate from Go:
//
//	voxgate-go synth TEXT [-o out.wav] [--format wav|pcm|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
//	voxgate-go generate PROMPT [--system TEXT] [--model M] [--max-tokens N] [--no-stream] [--json]
//	                    [--image FILE_OR_URL]... [--think] [--tool NAME[=JSON_SCHEMA]]... [--tool-choice C]
//
// Both take --server HOST:PORT (default 127.0.0.1:50051) and --timeout SECONDS (default 60).
// Exit status: 0 done, 1 the call failed (the gRPC status is printed), 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"voxgate/client"
	generationv1 "voxgate/gen/generation/v1"
	speechv1 "voxgate/gen/speech/v1"
)

const usage = `usage: voxgate-go synth TEXT [-o FILE] [--format pcm|wav|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
       voxgate-go generate PROMPT [--system TEXT] [--model M] [--max-tokens N] [--no-stream] [--json]
                           [--image FILE_OR_URL]... [--think] [--tool NAME[=JSON_SCHEMA]]... [--tool-choice C]
common options: --server HOST:PORT (default 127.0.0.1:50051), --timeout SECONDS (default 60)`

var formats = map[string]speechv1.AudioFormat{
	"pcm":  speechv1.AudioFormat_AUDIO_FORMAT_PCM,
	"wav":  speechv1.AudioFormat_AUDIO_FORMAT_WAV,
	"mp3":  speechv1.AudioFormat_AUDIO_FORMAT_MP3,
	"opus": speechv1.AudioFormat_AUDIO_FORMAT_OPUS,
}

// usageError is bad command-line input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// common holds the options every command takes.
type common struct {
	server  string
	timeout float64
	model   string
}

func newFlags(name string) (*flag.FlagSet, *common) {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(io.Discard) // main reports errors and usage once, in one format
	flags.Usage = func() {}
	opts := &common{}
	flags.StringVar(&opts.server, "server", "127.0.0.1:50051", "voxgate address")
	flags.Float64Var(&opts.timeout, "timeout", 60, "deadline in seconds")
	flags.StringVar(&opts.model, "model", "", "model (default: the server's)")
	return flags, opts
}

// parse parses flags given before or after the one positional argument.
func parse(flags *flag.FlagSet, opts *common, args []string) (string, error) {
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
	if len(positional) != 1 {
		return "", usageError{"expected exactly one text argument"}
	}
	if opts.timeout <= 0 {
		return "", usageError{"--timeout must be a positive number of seconds"}
	}
	return positional[0], nil
}

func (opts *common) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(opts.timeout*float64(time.Second)))
}

func synth(args []string) error {
	flags, opts := newFlags("synth")
	output := flags.String("o", "out.wav", "audio file to write")
	format := flags.String("format", "", "pcm, wav, mp3 or opus (default: from the file suffix)")
	sampleRate := flags.Uint("sample-rate", 0, "Hz (default: the server's, 22050)")
	voice := flags.String("voice", "", "voice (default: the server's)")
	text, err := parse(flags, opts, args)
	if err != nil {
		return err
	}
	formatName := *format
	if formatName == "" {
		formatName = strings.ToLower(strings.TrimPrefix(filepath.Ext(*output), "."))
	}
	if formatName == "" {
		formatName = "wav"
	}
	wire, ok := formats[formatName]
	if !ok {
		return usageError{fmt.Sprintf("cannot tell the format from %s; pass --format", *output)}
	}
	request := &speechv1.SynthesizeRequest{
		Text: text, Model: opts.model, Voice: *voice, Format: wire, SampleRate: uint32(*sampleRate),
	}
	c, err := client.Dial(opts.server)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.context()
	defer cancel()
	result, err := c.SynthesizeToFile(ctx, request, *output)
	if err != nil {
		return err
	}
	s := result.Summary
	fmt.Printf("wrote %s: %d bytes %s at %d Hz\n", *output, result.AudioBytes, formatName, s.SampleRate)
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
	system := flags.String("system", "", "system message")
	maxTokens := flags.Uint("max-tokens", 0, "most tokens to generate (default: the model's)")
	noStream := flags.Bool("no-stream", false, "call Generate (the whole answer at once) instead of GenerateStream")
	jsonLines := flags.Bool("json", false, "print each message as one line of JSON")
	var images, toolSpecs repeated
	flags.Var(&images, "image", "an image sent with the prompt: a file (inline) or a URL; repeatable")
	think := flags.Bool("think", false, "thinking mode: print the model's reasoning (prefixed) first")
	flags.Var(&toolSpecs, "tool", "a function the model may call, NAME[=JSON_SCHEMA]; repeatable")
	toolChoice := flags.String("tool-choice", "", "auto, none, or a tool's name")
	prompt, err := parse(flags, opts, args)
	if err != nil {
		return err
	}
	var messages []*generationv1.Message
	if *system != "" {
		messages = append(messages, &generationv1.Message{Role: "system", Content: *system})
	}
	user, err := userMessage(prompt, images)
	if err != nil {
		return err
	}
	messages = append(messages, user)
	sampling := &generationv1.Sampling{}
	if *maxTokens > 0 {
		tokens := uint32(*maxTokens)
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
	c, err := client.Dial(opts.server)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.context()
	defer cancel()
	started := time.Now()
	if *noStream {
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
	thinking := false
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

// userMessage is the prompt after its images: files are read and sent inline, URLs as they are.
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
			return nil, usageError{fmt.Sprintf("--image: %v", err)}
		}
		parts = append(parts, &generationv1.ContentPart{Kind: &generationv1.ContentPart_Image{Image: data}})
	}
	parts = append(parts, &generationv1.ContentPart{Kind: &generationv1.ContentPart_Text{Text: prompt}})
	return &generationv1.Message{Role: "user", Parts: parts}, nil
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
	commands := map[string]func([]string) error{"synth": synth, "generate": generate}
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
		fmt.Println(usage)
	case errors.As(err, &bad):
		fmt.Fprintf(os.Stderr, "voxgate-go %s: %s\n%s\n", name, bad.msg, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "voxgate-go %s: %s\n", name, client.Describe(err))
		os.Exit(1)
	}
}
