package sip_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
)

// BenchmarkDeadAir calls a freshly started line running the shipped
// main.lua (an empty prompt cache, the flows' sentences being rendered in
// the background as ivrd does at start), alone and in a burst of callers
// 300 ms apart ($IVR_BENCH_BURST, default 20), and has each caller go
// through it by voice: "pașaport", then yes or no to what it is asked, up
// to the goodbye. From the phones' side it reports:
//   - welcome-ms: from the answer to the welcome's first audio (p50, p99);
//   - listen-s: from the answer to the end of the first question, when the
//     line waits for the caller (a caller who waits politely hears this
//     much before the line expects an answer);
//   - turn-ms: from the end of the caller's speech (its last loud frame
//     leaving the phone) to the first audio of the next prompt, the
//     endpointing silence (700 ms) included (p50, p99);
//   - silence-ms: the longest stretch of engine silence while the flow was
//     not waiting for the caller (between two prompts with no caller
//     speech in between), over all calls.
//
// Each iteration is one fresh line and one burst.
func BenchmarkDeadAir(b *testing.B) {
	burst := 20
	if n, err := strconv.Atoi(os.Getenv("IVR_BENCH_BURST")); err == nil && n > 0 {
		burst = n
	}
	for _, n := range []int{1, burst} {
		name := "alone"
		if n > 1 {
			name = fmt.Sprintf("burst%d", n)
		}
		b.Run(name, func(b *testing.B) { deadAir(b, n) })
	}
}

// airStats are one call's figures.
type airStats struct {
	welcome, listen time.Duration
	turns           []time.Duration
	silence         time.Duration
	err             error
}

func deadAir(b *testing.B, callers int) {
	pool, rec, syn := speechEngines(b)
	words := map[string][]int16{}
	for _, w := range []string{"pașaport", "da", "nu"} {
		words[w] = utterance(b, syn, "ro", w, 8000)
	}
	var all []airStats
	for b.Loop() {
		synth := &ivr.RenderCache{Dir: b.TempDir()}
		l := shippedLineWith(b, speechConfig(pool, ivr.SerialStreams(rec)), synth)
		rt := l.eng.Flow.(*flows.Runtime)
		ctx, cancel := context.WithCancel(context.Background())
		go synth.Warm(ctx, rt.Texts("ro")) // as ivrd at start
		var wg sync.WaitGroup
		stats := make([]airStats, callers)
		for i := range callers {
			wg.Go(func() { stats[i] = airCall(b, l, words) })
			time.Sleep(300 * time.Millisecond)
		}
		wg.Wait()
		cancel()
		for _, s := range stats {
			if s.err != nil {
				b.Fatal(s.err)
			}
		}
		all = append(all, stats...)
	}
	var welcome, listen, turns []time.Duration
	var silence time.Duration
	for _, s := range all {
		welcome = append(welcome, s.welcome)
		listen = append(listen, s.listen)
		turns = append(turns, s.turns...)
		silence = max(silence, s.silence)
	}
	b.ReportMetric(float64(percentile(welcome, 0.5).Milliseconds()), "welcome-p50-ms")
	b.ReportMetric(float64(percentile(welcome, 0.99).Milliseconds()), "welcome-p99-ms")
	b.ReportMetric(percentile(listen, 0.5).Seconds(), "listen-p50-s")
	b.ReportMetric(percentile(listen, 0.99).Seconds(), "listen-p99-s")
	b.ReportMetric(float64(percentile(turns, 0.5).Milliseconds()), "turn-p50-ms")
	b.ReportMetric(float64(percentile(turns, 0.99).Milliseconds()), "turn-p99-ms")
	b.ReportMetric(float64(silence.Milliseconds()), "silence-max-ms")
}

// airCall is one caller's conversation with the shipped flow.
func airCall(b *testing.B, l *line, words map[string][]int16) (st airStats) {
	c := l.benchCall(b)
	answered := time.Now()
	defer c.hangup()
	p := newProbe(c)
	defer p.close()
	callID := c.d.InviteRequest.CallID().Value()
	n := c.rate / 50
	// heardAt returns when heard frame i arrived.
	heardAt := func(i int) time.Time {
		p.mu.Lock()
		defer p.mu.Unlock()
		if i < len(p.heard) {
			return p.heard[i]
		}
		return time.Now()
	}
	// quietAfter waits until a second of silence follows loud audio heard
	// from frame from on, and returns the last loud frame.
	quietAfter := func(from int) (int, bool) {
		last := -1
		ok := waitFor(40*time.Second, func() bool {
			lf := loudFrames(c.heardSince(from*n), c.rate)
			if len(lf) == 0 {
				return false
			}
			last = from + lf[len(lf)-1]
			return c.heardLen()/n-last >= 50 || c.d.Context().Err() != nil
		})
		return last, ok
	}
	var spoke [][2]time.Time // the caller's utterances, first and last loud frame sent
	if !waitFor(20*time.Second, func() bool { return len(loudFrames(c.heardSince(0), c.rate)) > 0 }) {
		st.err = fmt.Errorf("call %s: no welcome", callID)
		return st
	}
	st.welcome = heardAt(loudFrames(c.heardSince(0), c.rate)[0]).Sub(answered)
	from := 0
	for turn := 0; turn < 6; turn++ {
		last, ok := quietAfter(from)
		if !ok {
			turns, _ := l.store.Transcript(context.Background(), callID)
			st.err = fmt.Errorf("call %s: the line did not stop talking (turn %d); transcript %+v", callID, turn, turns)
			return st
		}
		if turn == 0 {
			st.listen = heardAt(last).Add(20 * time.Millisecond).Sub(answered)
		}
		turns, _ := l.store.Transcript(context.Background(), callID)
		said := ""
		if len(turns) > 0 {
			said = turns[len(turns)-1].Text
		}
		var w string
		switch {
		case strings.Contains(said, "La revedere") || strings.Contains(said, "Goodbye"):
			turn = 6
			continue
		case strings.Contains(said, "altceva"):
			w = "nu"
		case strings.Contains(said, "corect"), strings.Contains(said, "V-a ajutat"):
			w = "da"
		default:
			w = "pașaport"
		}
		from = c.heardLen() / n
		lf := loudFrames(words[w], 8000)
		p.speak(words[w])
		start, end := p.sent(lf[0]), p.sent(lf[len(lf)-1])
		spoke = append(spoke, [2]time.Time{start, end})
		if !waitFor(20*time.Second, func() bool { return len(loudFrames(c.heardSince(from*n), c.rate)) > 0 }) {
			st.err = fmt.Errorf("call %s: nothing said after the caller's %q", callID, w)
			return st
		}
		for _, i := range loudFrames(c.heardSince(from*n), c.rate) {
			if at := heardAt(from + i); at.After(end) {
				st.turns = append(st.turns, at.Sub(end))
				break
			}
		}
	}
	// The longest silence between two loud frames with no caller speech
	// in between: the flow was not waiting for the caller.
	lf := loudFrames(c.heardSince(0), c.rate)
	for k := 1; k < len(lf); k++ {
		a, z := heardAt(lf[k-1]), heardAt(lf[k])
		if z.Sub(a) < 100*time.Millisecond {
			continue
		}
		waiting := false
		for _, s := range spoke {
			if s[1].After(a) && s[0].Before(z) {
				waiting = true
			}
		}
		if !waiting {
			st.silence = max(st.silence, z.Sub(a)-20*time.Millisecond)
		}
	}
	return st
}
