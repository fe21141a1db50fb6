package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"voxgate/client"
	generationv1 "voxgate/gen/generation/v1"
	speechv1 "voxgate/gen/speech/v1"
	voicev1 "voxgate/gen/voice/v1"
)

// Streaming text in (not in the conformance table: Python's `voxgate synth --stdin` is one flag).
func init() {
	usages["synth-stdin"] = "usage: " + prog + " synth-stdin [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}]" +
		" [--sample-rate HZ] [--voice VOICE] [--model MODEL] [--timeout SECONDS]" + connectionUsage
	usages["speak"] = "usage: " + prog + " speak PROMPT [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}]" +
		" [--sample-rate HZ] [--voice VOICE] [--model MODEL] [--timeout SECONDS]" + connectionUsage
}

// audioFlags are the options of synth-stdin and speak.
type audioFlags struct {
	output, format, voice *string
	sampleRate            *uint
}

func (a audioFlags) config(model string) (*speechv1.SynthesisConfig, string, error) {
	name := *a.format
	if name == "" {
		name = strings.ToLower(strings.TrimPrefix(filepath.Ext(*a.output), "."))
	}
	if name == "" {
		name = "wav"
	}
	wire, ok := formats[name]
	if !ok {
		return nil, "", usageError{fmt.Sprintf("cannot tell the format from %s; pass --format", pythonRepr(*a.output))}
	}
	return &speechv1.SynthesisConfig{Model: model, Voice: *a.voice, Format: wire, SampleRate: uint32(*a.sampleRate)}, name, nil
}

// stdinPieces sends standard input as it is read, one piece per read, never splitting a UTF-8 character.
func stdinPieces() <-chan string {
	pieces := make(chan string)
	go func() {
		defer close(pieces)
		buffer := make([]byte, 4096)
		var pending []byte
		for {
			n, err := os.Stdin.Read(buffer)
			pending = append(pending, buffer[:n]...)
			cut := len(pending)
			for cut > 0 && len(pending)-cut < utf8.UTFMax && !utf8.Valid(pending[:cut]) {
				cut--
			}
			if cut > 0 {
				pieces <- string(pending[:cut])
				pending = append([]byte(nil), pending[cut:]...)
			}
			if err != nil {
				if len(pending) > 0 {
					pieces <- string(pending)
				}
				return
			}
		}
	}()
	return pieces
}

func synthStdin(args []string) error {
	flags, opts := newFlags("synth-stdin")
	audio := audioFlags{
		output: flags.String("o", "out.wav", "audio file to write"), format: flags.String("format", "", "pcm, wav, mp3 or opus"),
		voice: flags.String("voice", "", "voice"), sampleRate: flags.Uint("sample-rate", 0, "Hz"),
	}
	if _, err := parse(flags, append([]string{"-"}, args...), "text"); err != nil { // no text argument: stdin
		return err
	}
	config, name, err := audio.config(opts.model)
	if err != nil {
		return err
	}
	c, err := client.DialWith(opts.server, opts.security)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.context(60)
	defer cancel()
	file, err := os.Create(*audio.output)
	if err != nil {
		return err
	}
	result, err := c.SynthesizeStream(ctx, config, stdinPieces(), file)
	if err == nil && config.Format == speechv1.AudioFormat_AUDIO_FORMAT_WAV && result.AudioBytes >= 44 {
		err = patchWav(file, result.AudioBytes)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(*audio.output)
		return err
	}
	s := result.Summary
	fmt.Printf("wrote %s: %d bytes %s at %d Hz\n", *audio.output, result.AudioBytes, name, s.SampleRate)
	fmt.Printf("%d pieces of text; first audio %.1f ms after the first piece\n", s.TextPieces, s.TextToFirstAudioMs)
	return nil
}

func speak(args []string) error {
	flags, opts := newFlags("speak")
	audio := audioFlags{
		output: flags.String("o", "out.wav", "audio file to write"), format: flags.String("format", "", "pcm, wav, mp3 or opus"),
		voice: flags.String("voice", "", "voice"), sampleRate: flags.Uint("sample-rate", 0, "Hz"),
	}
	prompt, err := parse(flags, args, "prompt")
	if err != nil {
		return err
	}
	config, name, err := audio.config("")
	if err != nil {
		return err
	}
	request := &voicev1.SpeakRequest{
		Model: opts.model, Messages: []*generationv1.Message{{Role: "user", Content: prompt}}, Speech: config,
	}
	c, err := client.DialWith(opts.server, opts.security)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opts.context(120)
	defer cancel()
	file, err := os.Create(*audio.output)
	if err != nil {
		return err
	}
	counter := &countingWriter{w: file}
	summary, err := c.Speak(ctx, request, func(text string) error { _, err := fmt.Print(text); return err }, counter)
	if err == nil && config.Format == speechv1.AudioFormat_AUDIO_FORMAT_WAV && counter.n >= 44 {
		err = patchWav(file, counter.n)
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(*audio.output)
		return err
	}
	fmt.Printf("\nwrote %s: %d bytes %s at %d Hz\n", *audio.output, counter.n, name, summary.SampleRate)
	fmt.Printf("first token %.1f ms, first audio %.1f ms in voxgate; finish %s; %d characters spoken\n",
		summary.TimeToFirstTokenMs, summary.TimeToFirstAudioMs, summary.FinishReason, summary.Characters)
	return nil
}

type countingWriter struct {
	w *os.File
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// patchWav replaces the 0xFFFFFFFF sizes of a streamed RIFF/WAVE header with the real ones.
func patchWav(file *os.File, total int64) error {
	var size [4]byte
	for _, field := range [][2]int64{{4, total - 8}, {40, total - 44}} {
		size[0], size[1], size[2], size[3] = byte(field[1]), byte(field[1]>>8), byte(field[1]>>16), byte(field[1]>>24)
		if _, err := file.WriteAt(size[:], field[0]); err != nil {
			return err
		}
	}
	return nil
}
