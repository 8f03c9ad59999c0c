package chat_test

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/govline/ivr/channels/chat"
)

// Measured, not asserted against the targets (the machine is
// shared): a message's round trip through a flow (typed text in, the
// flow's message out) and the heap an idle session holds (its socket, its
// flow's Lua state waiting in a question).
func TestMeasureRoundTripAndIdleHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.lua"), []byte(`
while true do
  local a = ask{ prompt = "Spuneți" }
  say(a.text or "")
end
`), 0o644)
	r := newRig(t, chat.Config{PerSecond: 100, NewSessions: 10000}, dir)
	c, _ := r.dial(t, "", "")
	c.until("ask")
	var rt []time.Duration
	for range 300 {
		start := time.Now()
		c.send(msg{Type: "text", Text: "am pierdut buletinul"})
		c.until("say")
		rt = append(rt, time.Since(start))
		c.until("ask")
		time.Sleep(10 * time.Millisecond) // under the rate limit
	}
	slices.Sort(rt)
	t.Logf("round trip through a flow: p50 %v, p99 %v, max %v (%d messages)", rt[len(rt)/2], rt[len(rt)*99/100], rt[len(rt)-1], len(rt))

	const n = 200
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		cl, err := r.dial(t, "", "")
		if err != nil {
			t.Fatal(err)
		}
		cl.until("ask")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d idle sessions: %d KiB of heap each (server and test client together)", n, (int64(after.HeapAlloc)-int64(before.HeapAlloc))/n/1024)
}
