package sip_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/dialplan/sip/siptest"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/tickets"
)

// benchLine is startLine for benchmarks (the harness's helpers take a
// *testing.T): a line running flow with speech through rec, logging
// nothing.
func benchLine(b *testing.B, flow flowFunc, rec speech.Recognizer) *line {
	b.Helper()
	pool, _, _ := speechEngines(b)
	promptsOnce.Lock()
	prompts := loadTestPrompts(b)
	promptsOnce.Unlock()
	dir := b.TempDir()
	store, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	calls := store.NewCallLog(0, quiet)
	b.Cleanup(func() { calls.Close() })
	eng := &ivr.Engine{Calls: calls, Metrics: ivr.NewMetrics(), Log: quiet, Prompts: prompts,
		Flow: flow, Synth: &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}, Lang: "ro",
		Speech: speechConfig(pool, ivr.SerialStreams(rec))}
	port := freePort(b)
	cfg := sip.Config{Listen: fmt.Sprintf("127.0.0.1:%d", port), RTPTimeout: 10 * time.Second}
	srv, err := sip.New(cfg, eng)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		_ = eng.Drain(dctx)
		cancel()
		<-errc
		srv.Close()
	})
	return &line{eng: eng, store: store, srv: srv, addr: cfg.Listen, port: port, dir: dir, cfg: cfg}
}

// benchCall places a call from a new phone (the call's t stays nil: the
// phone's helpers that report through it are not used here). The caller
// hangs it up.
func (l *line) benchCall(b *testing.B) *call {
	b.Helper()
	dg, _ := siptest.NewPhone(b, "bench-phone", media.CodecAudioUlaw, media.CodecTelephoneEvent8000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := invite(ctx, dg, gosip.Uri{User: "1919", Host: "127.0.0.1", Port: l.port}, diago.InviteOptions{})
	if err != nil {
		b.Fatalf("call not answered: %v", err)
	}
	c := &call{d: d, send: make(chan []int16, 500), keys: make(chan dtmfReq), mute: make(chan bool, 1)}
	c.start()
	return c
}

// probe timestamps, from the phone's side, when each of its queued speech
// frames left (the speaker took it from c.send and wrote its packet) and
// when each 20 ms frame of the line's audio arrived. It polls every 200 µs.
type probe struct {
	c      *call
	queued int // frames queued by speakAt
	mu     sync.Mutex
	sentAt []time.Time
	heard  []time.Time // arrival of heard frame i (absolute index)
	stop   chan struct{}
	done   chan struct{}
}

func newProbe(c *call) *probe {
	p := &probe{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *probe) run() {
	defer close(p.done)
	n := p.c.rate / 50
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		now := time.Now()
		frames := p.c.heardLen() / n
		p.mu.Lock()
		for len(p.heard) < frames {
			p.heard = append(p.heard, now)
		}
		for taken := p.queued - len(p.c.send); len(p.sentAt) < taken; {
			p.sentAt = append(p.sentAt, now)
		}
		p.mu.Unlock()
		time.Sleep(200 * time.Microsecond)
	}
}

// speak queues pcm (the send queue must be empty) and counts its frames.
func (p *probe) speak(pcm []int16) {
	n := p.c.rate / 50
	p.mu.Lock()
	p.queued = (len(pcm) + n - 1) / n
	p.sentAt = nil
	p.mu.Unlock()
	p.c.speak(pcm)
}

func (p *probe) close() { close(p.stop); <-p.done }

// sent returns when queued frame i left, waiting for it.
func (p *probe) sent(i int) time.Time {
	for {
		p.mu.Lock()
		if i < len(p.sentAt) {
			t := p.sentAt[i]
			p.mu.Unlock()
			return t
		}
		p.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// loudFrames returns the indexes of the 20 ms frames of pcm above -40 dBFS.
func loudFrames(pcm []int16, rate int) []int {
	var out []int
	for i, v := range envelope(pcm, rate) {
		if v > 50 {
			out = append(out, i)
		}
	}
	return out
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkBargeInLatency measures, on real calls over loopback, the time
// from the first frame of caller speech leaving the phone to the arrival of
// the last packet of the prompt it interrupts (each iteration is one call).
func BenchmarkBargeInLatency(b *testing.B) {
	_, rec, syn := speechEngines(b)
	long := "Bună ziua. Ați sunat la linia de asistență pentru serviciile publice. Pentru cartea de identitate spuneți buletin. Pentru pașaport spuneți pașaport. Pentru contul de pe portal spuneți cont."
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		if _, err := ch.Say(ctx, flows.Prompt{Lang: "ro", BargeIn: true, Parts: []flows.Part{{Kind: flows.PartText, Value: long, Text: long}}}); err != nil {
			return flows.Outcome{Kind: flows.OutcomeCaller}
		}
		ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 3 * time.Second})
		ch.Say(ctx, text("ro", "Mulțumim."))
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	l := benchLine(b, flow, rec)
	words := utterance(b, syn, "ro", "pașaport", 8000)
	onset := loudFrames(words, 8000)[0]
	var lat []time.Duration
	for b.Loop() {
		c := l.benchCall(b)
		p := newProbe(c)
		if !waitFor(20*time.Second, func() bool { return c.heardSpeech(0) >= 50 }) {
			b.Fatal("no prompt heard")
		}
		from := c.heardLen() / (c.rate / 50)
		p.speak(words)
		start := p.sent(onset)
		time.Sleep(time.Second)
		p.close()
		heard := c.heardSince(from * (c.rate / 50))
		lf := loudFrames(heard, c.rate)
		if len(lf) > 0 {
			last := p.heard[from+lf[len(lf)-1]]
			lat = append(lat, max(0, last.Sub(start)))
		}
		c.waitEnded(10 * time.Second)
		c.hangup()
	}
	b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.95).Milliseconds()), "p95-ms")
	b.ReportMetric(float64(l.eng.Metrics.SpeechBargeIns.Load())/float64(len(lat)), "bargeins/call")
}

// BenchmarkTurnLatency measures the time from the end of the caller's
// speech (its last loud frame leaving the phone) to the first packet of the
// line's answer, minus the configured endpointing silence.
func BenchmarkTurnLatency(b *testing.B) {
	_, rec, syn := speechEngines(b)
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		if _, err := ch.Say(ctx, text("ro", "Spuneți serviciul.")); err != nil {
			return flows.Outcome{Kind: flows.OutcomeCaller}
		}
		in, _ := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 5 * time.Second})
		if in.Mode == flows.InputSpeech {
			ch.Say(ctx, text("ro", "Ați ales "+in.Text+"."))
		}
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	l := benchLine(b, flow, rec)
	words := utterance(b, syn, "ro", "pașaport", 8000)
	lf := loudFrames(words, 8000)
	lastSpeech := lf[len(lf)-1]
	var lat []time.Duration
	for b.Loop() {
		c := l.benchCall(b)
		p := newProbe(c)
		// The question is heard, then silence.
		if !waitFor(10*time.Second, func() bool { return c.heardLen() > c.rate/2 }) {
			b.Fatal("no prompt heard")
		}
		waitFor(5*time.Second, func() bool {
			h := c.heardSince(max(0, c.heardLen()-c.rate/5))
			return len(loudFrames(h, c.rate)) == 0
		})
		from := c.heardLen() / (c.rate / 50)
		p.speak(words)
		end := p.sent(lastSpeech)
		if !waitFor(5*time.Second, func() bool {
			return len(loudFrames(c.heardSince(from*(c.rate/50)), c.rate)) > 0
		}) {
			b.Fatal("no answer heard")
		}
		time.Sleep(50 * time.Millisecond)
		p.close()
		for _, i := range loudFrames(c.heardSince(from*(c.rate/50)), c.rate) {
			if at := p.heard[from+i]; at.After(end) {
				lat = append(lat, at.Sub(end)-ivr.DefaultEndSilence)
				break
			}
		}
		c.waitEnded(10 * time.Second)
		c.hangup()
	}
	b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.95).Milliseconds()), "p95-ms")
	b.ReportMetric(float64(l.eng.Metrics.SpeechTurns.Load())/float64(max(1, len(lat))), "turns/call")
}

// BenchmarkListeningCalls holds many calls in a speech Listen at once: every
// phone says "pașaport" every 3 s, every call runs the VAD on all its audio
// and the grammar recognizer while its caller speaks. It reports the CPU
// of the whole process (engine and phones) per call, the turns recognized
// and the frames the turn-taking dropped. Each iteration is 3 s.
// $IVR_BENCH_CALLS sets the number of calls (default 100).
func BenchmarkListeningCalls(b *testing.B) {
	calls := 100
	if n, err := strconv.Atoi(os.Getenv("IVR_BENCH_CALLS")); err == nil && n > 0 {
		calls = n
	}
	_, rec, syn := speechEngines(b)
	var right, wrong atomic.Int64 // turns recognized as "pașaport", and others
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		for ctx.Err() == nil {
			in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 10 * time.Second})
			if err != nil {
				break
			}
			switch {
			case in.Mode != flows.InputSpeech:
			case in.Text == "pașaport":
				right.Add(1)
			default:
				wrong.Add(1)
			}
		}
		return flows.Outcome{Kind: flows.OutcomeCaller}
	})
	l := benchLine(b, flow, rec)
	words := utterance(b, syn, "ro", "pașaport", 8000)
	var cs []*call
	for range calls {
		cs = append(cs, l.benchCall(b))
	}
	defer func() {
		for _, c := range cs {
			c.hangup()
		}
	}()
	// A first round warms the recognizer's decoder pool (a new decoder
	// loads the acoustic model).
	for _, c := range cs {
		c.speak(words)
	}
	time.Sleep(4 * time.Second)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	drop0 := l.eng.Metrics.SpeechFramesDropped.Load()
	right.Store(0)
	wrong.Store(0)
	c0, t0 := cpu(), time.Now()
	for b.Loop() {
		for i, c := range cs {
			go func() {
				time.Sleep(time.Duration(i) * 3 * time.Second / time.Duration(calls)) // spread the speakers
				c.speak(words)
			}()
		}
		time.Sleep(3 * time.Second)
	}
	elapsed, used := time.Since(t0), cpu()-c0
	time.Sleep(2 * time.Second) // the last turns end
	b.ReportMetric(float64(used)/float64(elapsed)/float64(calls)*100, "cpu%/call")
	b.ReportMetric(float64(used)/float64(elapsed), "cores")
	b.ReportMetric(float64(right.Load())/float64(calls*b.N), "right/utterance")
	b.ReportMetric(float64(wrong.Load())/float64(calls*b.N), "wrong/utterance")
	b.ReportMetric(float64(l.eng.Metrics.SpeechFramesDropped.Load()-drop0), "dropped-frames")
	b.ReportMetric(float64(calls), "calls")
}
