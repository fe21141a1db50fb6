package client

import (
	"context"
	"io"
	"time"

	speechv1 "voxgate/gen/speech/v1"
	voicev1 "voxgate/gen/voice/v1"
)

// SynthesizeStream sends config, then every piece of text received from pieces as it comes,
// and ends the text when pieces is closed; it writes each audio chunk to w as it arrives (while
// later pieces are still being written) and returns the summary.
func (c *Client) SynthesizeStream(
	ctx context.Context, config *speechv1.SynthesisConfig, pieces <-chan string, w io.Writer,
) (*SynthesisResult, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel() // also ends the sender below if we return early
	started := time.Now()
	stream, err := c.Speech.SynthesizeStream(ctx)
	if err != nil {
		return nil, err
	}
	go func() {
		// A failed Send means the call ended; Recv below reports why.
		if stream.Send(&speechv1.SynthesizeStreamRequest{Kind: &speechv1.SynthesizeStreamRequest_Config{Config: config}}) != nil {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case piece, ok := <-pieces:
				if !ok {
					_ = stream.CloseSend()
					return
				}
				if stream.Send(&speechv1.SynthesizeStreamRequest{Kind: &speechv1.SynthesizeStreamRequest_Text{Text: piece}}) != nil {
					return
				}
			}
		}
	}()
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
		if result.AudioBytes == 0 {
			result.ClientFirstPacket = time.Since(started)
		}
		if _, err := w.Write(response.GetAudio()); err != nil {
			return nil, err
		}
		result.AudioBytes += int64(len(response.GetAudio()))
	}
	if result.Summary == nil {
		return nil, ErrIncompleteStream
	}
	result.Total = time.Since(started)
	return result, nil
}

// Speak asks the model and hears its answer: onText gets each text delta and w each audio
// chunk, interleaved as they come; it returns the summary.
func (c *Client) Speak(
	ctx context.Context, req *voicev1.SpeakRequest, onText func(string) error, w io.Writer,
) (*voicev1.SpeakSummary, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	stream, err := voicev1.NewVoiceServiceClient(c.conn).Speak(ctx, req)
	if err != nil {
		return nil, err
	}
	var summary *voicev1.SpeakSummary
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch kind := response.Kind.(type) {
		case *voicev1.SpeakResponse_Text:
			err = onText(kind.Text)
		case *voicev1.SpeakResponse_Audio:
			_, err = w.Write(kind.Audio)
		case *voicev1.SpeakResponse_Summary:
			summary = kind.Summary
		}
		if err != nil {
			return nil, err
		}
	}
	if summary == nil {
		return nil, ErrIncompleteStream
	}
	return summary, nil
}
