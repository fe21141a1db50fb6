// Package client is a small Go client for voxgate, on code generated from the repository's protos.
//
//	c, err := client.Dial("127.0.0.1:50051")
//	if err != nil { ... }
//	defer c.Close()
//	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	result, err := c.SynthesizeToFile(ctx, &speechv1.SynthesizeRequest{Text: "Hello"}, "hello.wav")
//
// Every call has a deadline: a context without one gets DefaultTimeout. Failures are gRPC
// status errors (status.Code(err), status.Convert(err).Message()); Describe formats one as
// "INVALID_ARGUMENT: text: must not be empty".
package client

import (
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	generationv1 "voxgate/gen/generation/v1"
	speechv1 "voxgate/gen/speech/v1"
)

// DefaultServiceConfig is clients/service_config.json, compiled in: round_robin over every
// address the target resolves to, and a retryPolicy for UNAVAILABLE.
//
//go:embed service_config.json
var DefaultServiceConfig string

// DefaultTimeout is the deadline of a call whose context has none.
const DefaultTimeout = 60 * time.Second

const wavHeaderBytes = 44

// ErrIncompleteStream means a stream ended with OK but without its final message.
var ErrIncompleteStream = errors.New("stream ended without its final message: the result may be incomplete")

// Client holds one channel to voxgate for both services. Close it when done.
type Client struct {
	conn       *grpc.ClientConn
	Speech     speechv1.SpeechServiceClient
	Generation generationv1.GenerationServiceClient
}

// Dial opens a plaintext channel to target ("127.0.0.1:50051", or "dns:///voxgate-headless:50051"
// to balance over every pod) with DefaultServiceConfig. Extra options come last, so they win.
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	options := append([]grpc.DialOption{
		grpc.WithInsecure(), // grpc-go 1.33 (Debian bookworm) predates credentials/insecure
		grpc.WithDefaultServiceConfig(DefaultServiceConfig),
	}, opts...)
	conn, err := grpc.Dial(target, options...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:       conn,
		Speech:     speechv1.NewSpeechServiceClient(conn),
		Generation: generationv1.NewGenerationServiceClient(conn),
	}, nil
}

// Close closes the channel.
func (c *Client) Close() error {
	return c.conn.Close()
}

// Describe formats an error as "CODE: message" when it carries a gRPC status.
func Describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", CodeName(s.Code()), s.Message())
	}
	return err.Error()
}

// codeNames are the canonical status code names (codes.Code's String() is CamelCase).
var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
	"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// CodeName is the canonical name of a status code, as in the gRPC spec: "INVALID_ARGUMENT".
func CodeName(code codes.Code) string {
	if int(code) < len(codeNames) {
		return codeNames[code]
	}
	return fmt.Sprintf("CODE_%d", uint32(code))
}

// withDeadline gives ctx DefaultTimeout unless it already has a deadline.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// SynthesisResult is what a finished Synthesize call returns.
type SynthesisResult struct {
	Summary           *speechv1.SynthesisSummary
	AudioBytes        int64
	ClientFirstPacket time.Duration // from sending the request to receiving the first audio chunk
	Total             time.Duration
}

// Synthesize writes each audio chunk to w as it arrives and returns the summary.
func (c *Client) Synthesize(ctx context.Context, req *speechv1.SynthesizeRequest, w io.Writer) (*SynthesisResult, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel() // also cancels the call if we return early on a write error
	started := time.Now()
	stream, err := c.Speech.Synthesize(ctx, req)
	if err != nil {
		return nil, err
	}
	result := &SynthesisResult{}
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if summary := response.GetSummary(); summary != nil {
			result.Summary = summary
			continue
		}
		audio := response.GetAudio()
		if result.AudioBytes == 0 {
			result.ClientFirstPacket = time.Since(started)
		}
		if _, err := w.Write(audio); err != nil {
			return nil, err
		}
		result.AudioBytes += int64(len(audio))
	}
	if result.Summary == nil {
		return nil, ErrIncompleteStream
	}
	result.Total = time.Since(started)
	return result, nil
}

// SynthesizeToFile streams the audio into path; a WAV file gets the sizes of its streaming
// header (0xFFFFFFFF while streaming) patched at the end. If the call fails, path is removed:
// a short clip never stays behind looking whole.
func (c *Client) SynthesizeToFile(ctx context.Context, req *speechv1.SynthesizeRequest, path string) (*SynthesisResult, error) {
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	result, err := c.Synthesize(ctx, req, file)
	if err == nil && result.Summary.Format == speechv1.AudioFormat_AUDIO_FORMAT_WAV && result.AudioBytes >= wavHeaderBytes {
		err = patchWavSizes(file, result.AudioBytes)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		_ = os.Remove(path) // the call's error is the one to report
		return nil, err
	}
	return result, nil
}

func patchWavSizes(file *os.File, totalBytes int64) error {
	var size [4]byte
	binary.LittleEndian.PutUint32(size[:], uint32(totalBytes-8))
	if _, err := file.WriteAt(size[:], 4); err != nil { // RIFF chunk size
		return err
	}
	binary.LittleEndian.PutUint32(size[:], uint32(totalBytes-wavHeaderBytes))
	_, err := file.WriteAt(size[:], 40) // data chunk size
	return err
}

// GenerateStream calls onMessage with each message as it arrives (Delta is the new text) and
// returns the last one, which carries FinishReason, Usage and TimeToFirstTokenMs.
func (c *Client) GenerateStream(
	ctx context.Context, req *generationv1.GenerateStreamRequest, onMessage func(*generationv1.GenerateStreamResponse) error,
) (*generationv1.GenerateStreamResponse, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	stream, err := c.Generation.GenerateStream(ctx, req)
	if err != nil {
		return nil, err
	}
	var last *generationv1.GenerateStreamResponse
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := onMessage(response); err != nil {
			return nil, err
		}
		last = response
	}
	if last == nil || last.FinishReason == "" {
		return nil, ErrIncompleteStream
	}
	return last, nil
}

// Generate returns the whole answer at once.
func (c *Client) Generate(ctx context.Context, req *generationv1.GenerateRequest) (*generationv1.GenerateResponse, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	return c.Generation.Generate(ctx, req)
}
