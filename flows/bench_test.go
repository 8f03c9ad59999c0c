package flows_test

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
)

// nullChannel says nothing and hangs up at the first question.
type nullChannel struct{}

func (nullChannel) Say(ctx context.Context, p flows.Prompt) (flows.Played, error) {
	return flows.Played{Heard: "x"}, nil
}
func (nullChannel) Listen(ctx context.Context, l flows.Listen) (flows.Input, error) {
	return flows.Input{}, flows.ErrHangup
}

var quiet = flows.Services{Log: slog.New(slog.DiscardHandler)}

// BenchmarkStartCall: a new sandboxed state, the compiled flow loaded and
// run to its end, the state closed.
func BenchmarkStartCall(b *testing.B) {
	for _, bc := range []struct{ name, dir string }{
		{"minimal", ""},   // hangup() only
		{"main.lua", "."}, // the shipped flow up to its first question
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir := bc.dir
			if dir == "" {
				dir = writeFlowsB(b, "hangup('done')")
			}
			rt, err := flows.Load(dir, flows.Config{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if o := rt.Run(ctx, flows.Facts{CallID: "b"}, nullChannel{}, quiet); o.Err != nil {
					b.Fatal(o.Err)
				}
			}
		})
	}
}

func writeFlowsB(b *testing.B, src string) string {
	dir := b.TempDir()
	if err := writeFile(dir+"/main.lua", src); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkAPIRoundTrip: one call of an API function from Lua: say()
// through a channel that does nothing, and normalize(), a pure function.
func BenchmarkAPIRoundTrip(b *testing.B) {
	for name, body := range map[string]string{"say": `say("x")`, "normalize": `normalize("Ștefan")`} {
		b.Run(name, func(b *testing.B) {
			dir := writeFlowsB(b, "local n = tonumber(call.called) for i = 1, n do "+body+" end hangup('done')")
			rt, err := flows.Load(dir, flows.Config{Limits: flows.Limits{Instructions: 1 << 50, CPU: time.Hour}})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			if o := rt.Run(context.Background(), flows.Facts{Called: strconv.Itoa(b.N)}, nullChannel{}, quiet); o.Err != nil {
				b.Fatal(o.Err)
			}
		})
	}
}

// BenchmarkMemoryPerCall holds 200 calls of main.lua waiting at their
// first question and reports the heap they hold, per call.
func BenchmarkMemoryPerCall(b *testing.B) {
	rt, err := flows.Load(".", flows.Config{})
	if err != nil {
		b.Fatal(err)
	}
	const calls = 200
	var perCall float64
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		// Twice: a collection right after the previous iteration's calls
		// ended left about half of their states in the heap (gone after the
		// second), and the figure was half of what a call holds.
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		chans := make([]*blockingChannel, calls)
		for i := range chans {
			chans[i] = newBlocking()
			wg.Go(func() { rt.Run(ctx, flows.Facts{CallID: strconv.Itoa(i)}, chans[i], quiet) })
		}
		for _, ch := range chans { // every call is now waiting for its caller
			<-ch.said
			<-ch.said
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perCall = float64(after.HeapAlloc-before.HeapAlloc) / calls
		cancel()
		wg.Wait()
	}
	b.ReportMetric(perCall, "heap-B/call")
}
