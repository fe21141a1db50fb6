// voxgate-go load: a load generator for voxgate's Synthesize, in the spirit of ghz.
//
//	voxgate-go load [--server HOST:PORT] [--concurrency N | --rate PER_SECOND]
//	                [--requests N | --duration SECONDS] [--text TEXT]... [--texts FILE]
//	                [--format pcm|wav|mp3|opus] [--model M] [--voice V] [--timeout SECONDS]
//	                [--connections N] [--json]
//
// Closed loop (--concurrency, default 10): that many calls in flight, each worker starting its
// next call when one ends. Open loop (--rate): calls start on a fixed schedule whether or not
// earlier ones finished, so a slow server shows up as latency rather than as fewer calls. It
// stops after --requests calls or --duration seconds (default 200 requests). Texts go round
// robin (--text, repeatable, or --texts FILE with one text a line; default: a built-in set of
// short and long sentences). The audio is read and dropped.
//
// It prints the calls made, OK and failed ones by gRPC status, first-packet delay (request sent
// to first audio chunk) and total time percentiles over the OK calls, and a histogram of the
// first-packet delay; --json prints the same as one JSON object. Exit status 0 when every call
// ended OK, 1 when any failed, 2 on bad usage.
//
// --bench makes it the load generator of `python -m bench speech --loadgen go`: after a few
// untimed warm-up calls it prints "ready", starts when a line arrives on stdin, and prints
// "result " and one JSON object with every call as a row (bench/stats.py's Sample), the wall
// time, and its own CPU time and peak RSS.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/status"

	"voxgate/client"
	speechv1 "voxgate/gen/speech/v1"
)

const loadUsage = "usage: " + prog + " load [--server SERVER] [--concurrency N | --rate PER_SECOND]" +
	" [--requests N | --duration SECONDS] [--text TEXT]... [--texts FILE] [--format {mp3,opus,pcm,wav}]" +
	" [--model MODEL] [--voice VOICE] [--sample-rate HZ] [--min-chunk-ms MS] [--ramp-s SECONDS]" +
	" [--timeout SECONDS] [--connections N] [--json] [--bench]"

// defaultTexts are the texts used without --text/--texts: a short reply, a sentence, a paragraph.
var defaultTexts = []string{
	"Hello.",
	"Your order has shipped and will arrive on Thursday.",
	"Thank you for calling. Your call matters to us, and the next available agent will be with you " +
		"shortly. Meanwhile, most questions about orders, returns and billing are answered on our website.",
}

type textList []string

func (t *textList) String() string { return strings.Join(*t, "|") }

func (t *textList) Set(text string) error {
	*t = append(*t, text)
	return nil
}

// outcome is one call's result.
type outcome struct {
	code        string
	firstPacket time.Duration
	total       time.Duration
	audioBytes  int64
	poolWaitMs  float64 // from the summary; -1 without one
	hopMs       float64 // voxgate's first-packet delay minus the upstream's; -1 without a summary
	reused      bool
}

// row is the outcome as bench/stats.py's Sample.from_row reads it.
func (o outcome) row() []interface{} {
	firstPacket := -1.0
	if o.code == "OK" {
		firstPacket = milliseconds(o.firstPacket)
	}
	return []interface{}{firstPacket, milliseconds(o.total), o.audioBytes, o.code, o.poolWaitMs, o.hopMs, o.reused}
}

// Stats are percentiles in milliseconds over the OK calls.
type Stats struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Bucket is one bar of the histogram: calls with a first-packet delay up to UpToMs.
type Bucket struct {
	UpToMs float64 `json:"up_to_ms"`
	Count  int     `json:"count"`
}

// Report is what --json prints.
type Report struct {
	Target        string         `json:"target"`
	Mode          string         `json:"mode"` // "closed" or "open"
	Concurrency   int            `json:"concurrency,omitempty"`
	RatePerSecond float64        `json:"rate_per_second,omitempty"`
	Requests      int            `json:"requests"`
	OK            int            `json:"ok"`
	Errors        int            `json:"errors"`
	Statuses      map[string]int `json:"statuses"`
	DurationS     float64        `json:"duration_s"`
	Throughput    float64        `json:"requests_per_second"`
	AudioBytes    int64          `json:"audio_bytes"`
	FirstPacketMs Stats          `json:"first_packet_ms"`
	TotalMs       Stats          `json:"total_ms"`
	Histogram     []Bucket       `json:"first_packet_histogram"`
}

func load(args []string) error {
	flags, opts := newFlags("load")
	concurrency := newOptional(flags, "concurrency", "int", "calls in flight (closed loop; default 10)")
	rate := newOptional(flags, "rate", "float", "calls started per second (open loop)")
	requests := newOptional(flags, "requests", "int", "calls to make (default 200)")
	duration := newOptional(flags, "duration", "float", "seconds to run")
	connections := newOptional(flags, "connections", "int", "gRPC channels to spread the calls over (default 1)")
	var texts textList
	flags.Var(&texts, "text", "a text to synthesize (repeat for several)")
	textsFile := flags.String("texts", "", "a file with one text a line")
	format := flags.String("format", "pcm", "pcm, wav, mp3 or opus")
	voice := flags.String("voice", "", "voice (default: the server's)")
	sampleRate := newOptional(flags, "sample-rate", "int", "Hz (default: the server's)")
	minChunk := newOptional(flags, "min-chunk-ms", "int", "SynthesizeRequest.min_chunk_ms (default: unset)")
	rampS := flags.Float64("ramp-s", 0, "closed loop: start the workers spread over this many seconds")
	jsonOut := flags.Bool("json", false, "print the report as one JSON object")
	bench := flags.Bool("bench", false, "speak python -m bench's protocol (ready / a line / result JSON)")
	if err := flags.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if flags.NArg() > 0 {
		return usageError{"unrecognized arguments: " + strings.Join(flags.Args(), " ")}
	}
	wire, ok := formats[*format]
	if !ok {
		return usageError{fmt.Sprintf("argument --format: invalid choice: '%s' (choose from 'mp3', 'opus', 'pcm', 'wav')", *format)}
	}
	switch {
	case concurrency.set && rate.set:
		return usageError{"argument --rate: not allowed with argument --concurrency"}
	case requests.set && duration.set:
		return usageError{"argument --duration: not allowed with argument --requests"}
	case concurrency.set && concurrency.value < 1, connections.set && connections.value < 1:
		return usageError{"--concurrency and --connections must be at least 1"}
	case rate.set && rate.value <= 0, duration.set && duration.value <= 0, requests.set && requests.value < 1:
		return usageError{"--rate, --duration and --requests must be positive"}
	}
	if *textsFile != "" {
		data, err := os.ReadFile(*textsFile)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				texts = append(texts, line)
			}
		}
	}
	if len(texts) == 0 {
		texts = defaultTexts
	}
	total := 200
	if requests.set {
		total = int(requests.value)
	}
	if duration.set {
		total = math.MaxInt32
	}
	channels := 1
	if connections.set {
		channels = int(connections.value)
	}
	clients := make([]*client.Client, channels)
	for i := range clients {
		c, err := client.Dial(opts.server)
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}
	timeoutS := 60.0
	if opts.timeout.set {
		timeoutS = opts.timeout.value
	}

	ctx := context.Background()
	runFor := time.Duration(duration.value * float64(time.Second))
	if duration.set {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, runFor)
		defer cancel()
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		next     int64 = -1 // the index of the last call claimed
	)
	call := func(index int) outcome {
		request := &speechv1.SynthesizeRequest{
			Text: texts[index%len(texts)], Model: opts.model, Voice: *voice, Format: wire,
			SampleRate: uint32(sampleRate.value),
		}
		if minChunk.set {
			ms := uint32(minChunk.value)
			request.MinChunkMs = &ms
		}
		// A call in flight when --duration ends still runs to its end (or its own timeout).
		callCtx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutS*float64(time.Second)))
		defer cancel()
		started := time.Now()
		result, err := clients[index%len(clients)].Synthesize(callCtx, request, io.Discard)
		o := outcome{code: "OK", total: time.Since(started), poolWaitMs: -1, hopMs: -1}
		if err != nil {
			o.code = "UNKNOWN"
			if s, isStatus := status.FromError(err); isStatus {
				o.code = client.CodeName(s.Code())
			}
		} else {
			o.firstPacket, o.total, o.audioBytes = result.ClientFirstPacket, result.Total, result.AudioBytes
			s := result.Summary
			o.poolWaitMs, o.reused = s.PoolWaitMs, s.ConnectionReused
			o.hopMs = s.FirstPacketDelayMs - s.UpstreamFirstPacketDelayMs
		}
		return o
	}
	record := func(index int) {
		o := call(index)
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}
	claim := func() (int, bool) {
		if ctx.Err() != nil {
			return 0, false
		}
		index := atomic.AddInt64(&next, 1)
		return int(index), index < int64(total)
	}

	workers := 10
	if concurrency.set {
		workers = int(concurrency.value)
	}
	var cpuBefore float64
	if *bench {
		// Untimed warm-up, as bench/loadgen.py's: first calls pay for connections and caches.
		var warm sync.WaitGroup
		for i := 0; i < 4 && i < workers; i++ {
			warm.Add(1)
			go func(i int) {
				defer warm.Done()
				call(i)
			}(i)
		}
		warm.Wait()
		fmt.Println("ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return err
		}
		cpuBefore = cpuSeconds()
	}
	report := Report{Target: opts.server, Statuses: map[string]int{}}
	started := time.Now()
	var wg sync.WaitGroup
	if rate.set {
		report.Mode, report.RatePerSecond = "open", rate.value
		interval := time.Duration(float64(time.Second) / rate.value)
		for {
			index, more := claim()
			if !more || (duration.set && time.Duration(index)*interval >= runFor) {
				break // a call scheduled at the end of --duration or later is not made
			}
			// Each call's start is scheduled from the run's start, so a late wake-up is caught up.
			wait := time.Until(started.Add(time.Duration(index) * interval))
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
			}
			wg.Add(1)
			go func(index int) {
				defer wg.Done()
				record(index)
			}(index)
		}
	} else {
		report.Mode, report.Concurrency = "closed", workers
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				// Worker w starts w x ramp / workers late, so they do not all ask in the same millisecond.
				time.Sleep(time.Duration(*rampS * float64(time.Second) * float64(w) / float64(workers)))
				for index, more := claim(); more; index, more = claim() {
					record(index)
				}
			}(w)
		}
	}
	wg.Wait()
	elapsed := time.Since(started)
	if *bench {
		rows := make([][]interface{}, len(outcomes))
		for i, o := range outcomes {
			rows[i] = o.row()
		}
		var usage syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
		line, err := json.Marshal(map[string]interface{}{
			"samples": rows, "wall_s": elapsed.Seconds(), "cpu_s": cpuSeconds() - cpuBefore,
			"maxrss_kib": usage.Maxrss,
		})
		if err != nil {
			return err
		}
		fmt.Printf("result %s\n", line)
		return nil
	}

	var firstPackets, totals []float64
	for _, o := range outcomes {
		report.Statuses[o.code]++
		if o.code == "OK" {
			report.OK++
			report.AudioBytes += o.audioBytes
			firstPackets = append(firstPackets, milliseconds(o.firstPacket))
			totals = append(totals, milliseconds(o.total))
		}
	}
	report.Requests = len(outcomes)
	report.Errors = report.Requests - report.OK
	report.DurationS = elapsed.Seconds()
	report.Throughput = float64(report.Requests) / elapsed.Seconds()
	report.FirstPacketMs = percentiles(firstPackets)
	report.TotalMs = percentiles(totals)
	report.Histogram = histogram(firstPackets, 10)
	if *jsonOut {
		line, err := json.Marshal(report)
		if err != nil {
			return err
		}
		fmt.Printf("%s\n", line)
	} else {
		printReport(os.Stdout, &report)
	}
	if report.Errors > 0 {
		os.Exit(1)
	}
	return nil
}

// percentiles uses the nearest rank: p99 of 200 calls is the 198th fastest.
func percentiles(values []float64) Stats {
	if len(values) == 0 {
		return Stats{}
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	rank := func(p float64) float64 {
		index := int(math.Ceil(p/100*float64(len(sorted)))) - 1
		if index < 0 {
			index = 0
		}
		return sorted[index]
	}
	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	return Stats{
		Min: sorted[0], Mean: sum / float64(len(sorted)), P50: rank(50), P90: rank(90), P95: rank(95),
		P99: rank(99), Max: sorted[len(sorted)-1],
	}
}

// histogram counts values into n equal-width buckets from the smallest to the largest.
func histogram(values []float64, n int) []Bucket {
	if len(values) == 0 {
		return nil
	}
	low, high := values[0], values[0]
	for _, v := range values {
		low, high = math.Min(low, v), math.Max(high, v)
	}
	width := (high - low) / float64(n)
	if width == 0 {
		return []Bucket{{UpToMs: high, Count: len(values)}}
	}
	buckets := make([]Bucket, n)
	for i := range buckets {
		buckets[i].UpToMs = low + width*float64(i+1)
	}
	for _, v := range values {
		i := int((v - low) / width)
		if i >= n {
			i = n - 1
		}
		buckets[i].Count++
	}
	return buckets
}

func printReport(w io.Writer, r *Report) {
	mode := fmt.Sprintf("%d in flight (closed loop)", r.Concurrency)
	if r.Mode == "open" {
		mode = fmt.Sprintf("%.1f started per second (open loop)", r.RatePerSecond)
	}
	fmt.Fprintf(w, "Summary: %s\n", r.Target)
	fmt.Fprintf(w, "  calls:       %d (%d OK, %d failed) in %.2f s, %.1f calls/s\n",
		r.Requests, r.OK, r.Errors, r.DurationS, r.Throughput)
	fmt.Fprintf(w, "  load:        %s\n", mode)
	fmt.Fprintf(w, "  audio:       %d bytes\n", r.AudioBytes)
	row := func(name string, s Stats) {
		fmt.Fprintf(w, "  %-13s min %.1f  mean %.1f  p50 %.1f  p90 %.1f  p95 %.1f  p99 %.1f  max %.1f\n",
			name, s.Min, s.Mean, s.P50, s.P90, s.P95, s.P99, s.Max)
	}
	fmt.Fprintf(w, "\nLatency of the OK calls (ms):\n")
	row("first packet", r.FirstPacketMs)
	row("total", r.TotalMs)
	fmt.Fprintf(w, "\nStatus:\n")
	codes := make([]string, 0, len(r.Statuses))
	for code := range r.Statuses {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		fmt.Fprintf(w, "  %-20s %d\n", code, r.Statuses[code])
	}
	if len(r.Histogram) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFirst packet histogram (ms):\n")
	most := 0
	for _, b := range r.Histogram {
		if b.Count > most {
			most = b.Count
		}
	}
	for _, b := range r.Histogram {
		bar := strings.Repeat("■", int(math.Round(40*float64(b.Count)/float64(most))))
		fmt.Fprintf(w, "  %9.1f [%d]\t|%s\n", b.UpToMs, b.Count, bar)
	}
}

// cpuSeconds is the CPU time this process used so far, user and system.
func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}
