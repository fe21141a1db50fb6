// Command voxgate-go calls voxgate from Go:
//
//	voxgate-go synth TEXT [-o out.wav] [--format wav|pcm|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
//	voxgate-go generate PROMPT [--system TEXT] [--model M] [--max-tokens N] [--no-stream] [--json]
//	voxgate-go synth-stdin [-o out.wav] [--format F] [--sample-rate HZ] [--voice V] [--model M]
//	voxgate-go speak PROMPT [-o out.wav] [--format F] [--sample-rate HZ] [--voice V] [--model M]
//
// All take --server HOST:PORT (default 127.0.0.1:50051) and --timeout SECONDS (default 60).
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
       voxgate-go synth-stdin [-o FILE] [--format pcm|wav|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
       voxgate-go speak PROMPT [-o FILE] [--format pcm|wav|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
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
	prompt, err := parse(flags, opts, args)
	if err != nil {
		return err
	}
	var messages []*generationv1.Message
	if *system != "" {
		messages = append(messages, &generationv1.Message{Role: "system", Content: *system})
	}
	messages = append(messages, &generationv1.Message{Role: "user", Content: prompt})
	sampling := &generationv1.Sampling{}
	if *maxTokens > 0 {
		tokens := uint32(*maxTokens)
		sampling.MaxTokens = &tokens
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
		response, err := c.Generate(ctx, &generationv1.GenerateRequest{Model: opts.model, Messages: messages, Sampling: sampling})
		if err != nil {
			return err
		}
		if *jsonLines {
			return printJSON(response)
		}
		fmt.Printf("%s\n%s\nanswer in %.1f ms (client); %s\n", response.Text,
			finishLine(response.FinishReason, response.Usage), milliseconds(time.Since(started)),
			origin(response.Model, response.RequestId, response.Attempts))
		return nil
	}
	var firstToken time.Duration
	request := &generationv1.GenerateStreamRequest{Model: opts.model, Messages: messages, Sampling: sampling}
	last, err := c.GenerateStream(ctx, request, func(response *generationv1.GenerateStreamResponse) error {
		if firstToken == 0 && response.Delta != "" {
			firstToken = time.Since(started)
		}
		// Each piece goes out the moment it arrives (stdout is unbuffered): one JSON line per message with --json.
		if *jsonLines {
			return printJSON(response)
		}
		_, err := fmt.Print(response.Delta)
		return err
	})
	if err != nil {
		return err
	}
	if !*jsonLines {
		fmt.Printf("\n%s\nfirst token %.1f ms (client), %d ms in voxgate; %s\n",
			finishLine(last.FinishReason, last.Usage), milliseconds(firstToken), last.TimeToFirstTokenMs,
			origin(last.Model, last.RequestId, last.Attempts))
	}
	return nil
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
	return fmt.Sprintf("finish %s; usage %d in + %d out = %d tokens",
		finishReason, usage.GetInputTokens(), usage.GetOutputTokens(), usage.GetTotalTokens())
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
		"synth": synth, "generate": generate, "synth-stdin": synthStdin, "speak": speak,
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
		fmt.Println(usage)
	case errors.As(err, &bad):
		fmt.Fprintf(os.Stderr, "voxgate-go %s: %s\n%s\n", name, bad.msg, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "voxgate-go %s: %s\n", name, client.Describe(err))
		os.Exit(1)
	}
}
