//go:build linux

package kb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// threadCPU returns the CPU time used by the calling OS thread
// (CLOCK_THREAD_CPUTIME_ID): with the goroutine locked to its thread, the
// engine's own cost of a search (SQLite runs on the caller's thread),
// whatever else the machine runs.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTime = 3
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// genBase makes n Romanian articles: titles of 5 words, 8 keywords, 80
// words of text. With topical, each article has a subject of its own, as
// a real base of 10,000 articles does: half of its title and keywords and
// a quarter of its text come from a Zipf-distributed vocabulary (s=1.1,
// head flattened by v=50, since stop words are not indexed) of 30,000
// made-up words, the rest from the running text of the shipped articles
// (the common language). Without it, every article is made only of the
// shipped articles' words: 10,000 articles about the same seven services,
// the worst case for the number of articles a query matches.
func genBase(tb testing.TB, n int, topical bool) ([]Article, []string) {
	tb.Helper()
	arts, err := LoadDir(".")
	if err != nil {
		tb.Fatal(err)
	}
	var vocab []string
	for _, a := range arts {
		if a.Lang == "ro" {
			vocab = append(vocab, strings.Fields(a.Title+" "+a.Spoken+" "+a.Full)...)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	syll := []string{"ba", "ce", "di", "fo", "gu", "la", "me", "ni", "po", "ru", "sa", "te", "vi", "zo", "cra", "str", "ple", "mun", "tor", "van"}
	topic := make([]string, 30000)
	for i := range topic {
		w := ""
		for x := i + 1; x > 0; x /= len(syll) {
			w += syll[x%len(syll)]
		}
		topic[i] = w + "ex"
	}
	zipf := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.1, 50, uint64(len(topic)-1))
	pickShare := func(k int, share float64) string {
		ws := make([]string, k)
		for i := range ws {
			if topical && rng.Float64() < share {
				ws[i] = topic[zipf.Uint64()]
			} else {
				ws[i] = vocab[rng.IntN(len(vocab))]
			}
		}
		return strings.Join(ws, " ")
	}
	out := make([]Article, n)
	for i := range out {
		kws := make([]string, 8)
		for j := range kws {
			kws[j] = pickShare(1+rng.IntN(2), 0.5)
		}
		out[i] = Article{
			ID: fmt.Sprintf("gen-%d", i), Lang: "ro", Service: Services[i%len(Services)],
			Title: pickShare(5, 0.5), Keywords: kws, Spoken: pickShare(25, 0.25), Full: pickShare(55, 0.25),
		}
	}
	// Queries: a few words of one article, with filler and a typo.
	queries := make([]string, 500)
	for i := range queries {
		a := out[rng.IntN(n)]
		ws := strings.Fields(a.Title + " " + a.Spoken)
		q := []string{"vreau", "să"}
		for range 2 + rng.IntN(4) {
			q = append(q, ws[rng.IntN(len(ws))])
		}
		if w := q[len(q)-1]; len(w) > 5 && i%3 == 0 {
			q[len(q)-1] = w[:2] + w[3:] // a dropped letter
		}
		queries[i] = strings.Join(q, " ")
	}
	return out, queries
}

// BenchmarkSearch10k: search latency over 10,000 articles with subjects of
// their own, p50 and p99.
func BenchmarkSearch10k(b *testing.B) { benchSearch(b, true) }

// BenchmarkSearch10kSameTopic: the same over 10,000 articles all about the
// shipped base's services (most queries match a third of the base).
func BenchmarkSearch10kSameTopic(b *testing.B) { benchSearch(b, false) }

func benchSearch(b *testing.B, topical bool) {
	ix, _ := openIndex(b)
	arts, queries := genBase(b, 10000, topical)
	ctx := context.Background()
	if err := ix.Import(ctx, arts); err != nil {
		b.Fatal(err)
	}
	var lat, cpu []time.Duration
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t0, c0 := time.Now(), threadCPU()
		if _, err := ix.Search(ctx, "ro", queries[i%len(queries)], 5); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		cpu = append(cpu, threadCPU()-c0)
		i++
	}
	reportPercentiles(b, "", lat)
	reportPercentiles(b, "cpu-", cpu)
}

// BenchmarkSearchShipped: latency on the shipped base with the eval queries.
func BenchmarkSearchShipped(b *testing.B) {
	ix := shipped(b)
	qs, err := LoadEval("eval/queries.txt")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var lat, cpu []time.Duration
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q := qs[i%len(qs)]
		t0, c0 := time.Now(), threadCPU()
		if _, err := ix.Search(ctx, q.Lang, q.Query, 3); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		cpu = append(cpu, threadCPU()-c0)
		i++
	}
	reportPercentiles(b, "", lat)
	reportPercentiles(b, "cpu-", cpu)
}

// BenchmarkImport10k: time to import (replace) a base of 10,000 articles.
func BenchmarkImport10k(b *testing.B) {
	ix, _ := openIndex(b)
	arts, _ := genBase(b, 10000, true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := ix.Import(ctx, arts); err != nil {
			b.Fatal(err)
		}
	}
}

// reportPercentiles reports the median and 99th percentile of lat in
// milliseconds, as PREFIXp50-ms and PREFIXp99-ms.
func reportPercentiles(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
}
