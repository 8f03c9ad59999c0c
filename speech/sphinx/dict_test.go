package sphinx

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/govline/ivr/speech"
)

// The compact dictionary gives every word of the CMU dictionary the
// pronunciations, in the file's order, that a plain reading of the file
// gives it; a word it lacks has none.
func TestCMUDictMatchesTheFile(t *testing.T) {
	path := filepath.Join(DefaultModelDir, "cmudict-en-us.dict")
	d, err := readCMUDict(path)
	if err != nil {
		t.Fatalf("pocketsphinx-en-us (make deps installs it): %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w, p, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(w, '('); i > 0 {
			w = w[:i]
		}
		want[w] = append(want[w], strings.TrimSpace(p))
	}
	if len(want) < 100000 {
		t.Fatalf("the file has %d words", len(want))
	}
	var n int
	for w, prons := range want {
		if got := d.lookup(w); !slices.Equal(got, prons) {
			t.Fatalf("%q: %q, the file says %q", w, got, prons)
		}
		n += len(prons)
	}
	var each int
	d.each(func(string) { each++ })
	if each != n || len(d.entries) != n {
		t.Fatalf("%d entries, %d pronunciations by each, the file has %d", len(d.entries), each, n)
	}
	if got := d.lookup("operator"); len(got) == 0 || got[0] != "AA P ER EY T ER" {
		t.Fatalf("operator: %q", got)
	}
	for _, w := range []string{"pașaportul", "zzzzzz", "", "aaaaaaaaaaaaaaaaaa"} {
		if got := d.lookup(w); got != nil {
			t.Fatalf("%q is not in the dictionary, but: %q", w, got)
		}
	}
}

// Prepare leaves an idle decoder for each language: the first streams
// take it instead of loading the acoustic model, and a second Prepare
// adds none.
func TestPrepareLeavesADecoderPerLanguage(t *testing.T) {
	r := newRec(t, Options{})
	if err := r.Prepare(8000, "ro", "en"); err != nil {
		t.Fatal(err)
	}
	if err := r.Prepare(8000, "ro", "en"); err != nil {
		t.Fatal(err)
	}
	idle := func(lang string) int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.idle[poolKey{lang, 8000}])
	}
	if idle("ro") != 1 || idle("en") != 1 {
		t.Fatalf("idle decoders: ro %d, en %d", idle("ro"), idle("en"))
	}
	st, err := r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000, Grammar: speech.YesNo("ro")})
	if err != nil {
		t.Fatal(err)
	}
	if idle("ro") != 0 || idle("en") != 1 {
		t.Fatalf("with a Romanian stream open, idle decoders: ro %d, en %d", idle("ro"), idle("en"))
	}
	st.Finish(context.Background())
	if err := r.Prepare(11025, "ro"); err == nil {
		t.Fatal("Prepare accepted 11025 Hz")
	}
}

// BenchmarkReadCMUDict is the cost of loading the CMU dictionary, paid
// once per process at start (Prepare).
func BenchmarkReadCMUDict(b *testing.B) {
	path := filepath.Join(DefaultModelDir, "cmudict-en-us.dict")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := readCMUDict(path); err != nil {
			b.Fatal(err)
		}
	}
}
