// Package promtest compares a Prometheus text exposition with a golden
// file, family by family: names, HELP, TYPE, label sets and sample values,
// whatever the order the families and samples are written in. It is how
// the engine's /metrics was kept the same (names, types, labels, help and
// values) when it moved to github.com/prometheus/client_golang: the golden
// files were written by the hand-made exposition before the move
// (go test -run Golden -update).
package promtest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "rewrite the golden exposition files")

// T is what Golden needs of a *testing.T.
type T interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Golden compares the exposition got with the file path (rewritten with
// -update). A series of value 0 in got that the golden file lacks is not a
// difference (a labelled counter that now starts at 0). The values of the families named in volatile (runtime
// figures) are not compared, only their HELP, TYPE and labels. Families
// in got whose name starts with one of extra are left out (the process
// and Go collectors that the move added).
func Golden(t T, path string, got []byte, volatile []string, extra ...string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatalf("%v", err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("%v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden exposition: %v", err)
	}
	wf, err := Parse(want)
	if err != nil {
		t.Fatalf("golden exposition %s: %v", path, err)
	}
	gf, err := Parse(got)
	if err != nil {
		t.Fatalf("exposition: %v\n%s", err, got)
	}
	for name := range gf {
		for _, p := range extra {
			if strings.HasPrefix(name, p) {
				delete(gf, name)
			}
		}
	}
	// Families the golden file declares (HELP, TYPE) without a sample
	// (a labelled counter before its first event): got may hold them with
	// zeros only.
	for name, decl := range declared(want) {
		g, ok := gf[name]
		if _, inWant := wf[name]; inWant || !ok {
			continue
		}
		if g.GetHelp() != decl[0] || strings.ToLower(g.GetType().String()) != decl[1] {
			t.Errorf("%s: HELP %q TYPE %v, want %q %s", name, g.GetHelp(), g.GetType(), decl[0], decl[1])
		}
		if s := dropNewZeros(samples(g), nil); len(s) > 0 && !slices.Contains(volatile, name) {
			t.Errorf("%s: samples %v where the golden file has none", name, s)
		}
		delete(gf, name)
	}
	for _, d := range Diff(wf, gf, volatile) {
		t.Errorf("%s", d)
	}
}

// declared returns the HELP and TYPE of every family a text exposition
// declares, samples or not.
func declared(b []byte) map[string][2]string {
	out := map[string][2]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 4 || f[0] != "#" {
			continue
		}
		d := out[f[2]]
		switch f[1] {
		case "HELP":
			d[0] = f[3]
		case "TYPE":
			d[1] = f[3]
		}
		out[f[2]] = d
	}
	return out
}

// Parse reads a text exposition into families by name.
func Parse(b []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(b))
}

// Diff lists how got differs from want: families missing or added, HELP,
// TYPE, label sets and values (not for the volatile families).
func Diff(want, got map[string]*dto.MetricFamily, volatile []string) []string {
	var out []string
	names := make([]string, 0, len(want)+len(got))
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w, g := want[n], got[n]
		switch {
		case g == nil && len(w.GetMetric()) == 0:
			// A labelled family with no sample yet: the hand-written
			// exposition printed its HELP and TYPE alone, client_golang
			// prints it from its first sample on.
			continue
		case g == nil:
			out = append(out, fmt.Sprintf("%s: missing", n))
			continue
		case w == nil:
			out = append(out, fmt.Sprintf("%s: not in the golden exposition", n))
			continue
		}
		if w.GetHelp() != g.GetHelp() {
			out = append(out, fmt.Sprintf("%s: HELP %q, want %q", n, g.GetHelp(), w.GetHelp()))
		}
		if w.GetType() != g.GetType() {
			out = append(out, fmt.Sprintf("%s: TYPE %v, want %v", n, g.GetType(), w.GetType()))
		}
		ws, gs := samples(w), dropNewZeros(samples(g), samples(w))
		if slices.Contains(volatile, n) {
			ws, gs = keys(ws), keys(gs)
		}
		if !slices.Equal(ws, gs) {
			out = append(out, fmt.Sprintf("%s: samples\n  %s\nwant\n  %s", n, strings.Join(gs, "\n  "), strings.Join(ws, "\n  ")))
		}
	}
	return out
}

// samples renders each sample of f as "labels value", sorted.
func samples(f *dto.MetricFamily) []string {
	var out []string
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		lab := "{" + strings.Join(ls, ",") + "}"
		switch {
		case m.Counter != nil:
			out = append(out, fmt.Sprintf("%s %g", lab, m.Counter.GetValue()))
		case m.Gauge != nil:
			out = append(out, fmt.Sprintf("%s %g", lab, m.Gauge.GetValue()))
		case m.Untyped != nil:
			out = append(out, fmt.Sprintf("%s %g", lab, m.Untyped.GetValue()))
		case m.Histogram != nil:
			h := m.Histogram
			for _, b := range h.GetBucket() {
				out = append(out, fmt.Sprintf("%s le=%g %d", lab, b.GetUpperBound(), b.GetCumulativeCount()))
			}
			out = append(out, fmt.Sprintf("%s count %d", lab, h.GetSampleCount()), fmt.Sprintf("%s sum %g", lab, h.GetSampleSum()))
		case m.Summary != nil:
			out = append(out, fmt.Sprintf("%s count %d sum %g", lab, m.Summary.GetSampleCount(), m.Summary.GetSampleSum()))
		}
	}
	sort.Strings(out)
	return out
}

// keys keeps the label part of each sample (before the value).
func keys(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x[:strings.LastIndexByte(x, ' ')]
	}
	return out
}

// dropNewZeros leaves out of got the samples of value 0 whose labels are
// not in want: a labelled counter that now starts at 0 for each of its
// documented values says what the absent series said.
func dropNewZeros(got, want []string) []string {
	known := map[string]bool{}
	for _, k := range keys(want) {
		known[k] = true
	}
	out := got[:0:0]
	for _, s := range got {
		if strings.HasSuffix(s, " 0") && !known[s[:strings.LastIndexByte(s, ' ')]] {
			continue
		}
		out = append(out, s)
	}
	return out
}
