package sphinx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/speechtest"
)

// TestAccuracyFloor is the regression guard: the menu and yes/no answers
// of both languages, said by two development voices through G.711 µ-law
// and two held-out voices (a slow female one, a fast male one) through
// A-law, must stay above the floor set from what was measured when the
// engine was tuned (docs/speech.md has the full tables), and every
// answer's confidence must be in 0..1.
func TestAccuracyFloor(t *testing.T) {
	r := newRec(t, Options{})
	syn := newSynth(t)
	ulaw, alaw := speechtest.Telephone()[0], speechtest.Telephone()[1]
	floor := map[string]float64{"ro": 0.85, "en": 0.85}
	for _, lang := range []string{"ro", "en"} {
		var items []speechtest.Item
		for _, it := range speechtest.Items(lang) {
			if it.Grammar == "menu" || it.Grammar == "yesno" {
				items = append(items, it)
			}
		}
		held := speechtest.HeldOutVoices(lang)
		out := speechtest.Run(t, r, syn, items, speechtest.DevVoices(lang)[:2], ulaw, testing.Verbose())
		out = append(out, speechtest.Run(t, r, syn, items, []speechtest.Voice{held[0], held[7]}, alaw, testing.Verbose())...)
		for _, o := range out {
			if c := o.Result.Confidence; c < 0 || c > 1 {
				t.Errorf("%q: confidence %v out of 0..1", o.Item.Say, c)
			}
		}
		sc := speechtest.Tally(out)["all"]
		t.Logf("%s menu + yes/no, 2 development voices (µ-law) and 2 held-out (A-law): %v", lang, sc)
		if acc := sc.SentenceAccuracy(); acc < floor[lang] {
			t.Errorf("%s menu+yes/no sentence accuracy %.1f%% on G.711, floor %.0f%%", lang, 100*acc, 100*floor[lang])
		}
	}
}

// BenchmarkAccuracy prints the whole accuracy table (every language,
// condition, grammar kind and voice): go test -run '^$'
// -bench Accuracy -benchtime 1x -timeout 30m ./speech/sphinx/. Set
// SPHINX_FRONT=native8k for the 8 kHz front end, SPHINX_LANG and
// SPHINX_COND (comma-separated condition names) to run a part, SPHINX_GRAMMAR to run some grammar kinds only
// (comma-separated: "digits,digitsN"), SPHINX_ARGS to add pocketsphinx
// arguments ("-pip 0.5 -silprob 0.1"), SPHINX_PLAIN_DIGITS=1 to decode
// digits like the other grammars (Options.PlainDigits),
// SPHINX_FOLD_DIGITS=1 for Options.FoldDigits, VERBOSE=1 to list
// the misses, SPHINX_PER_CALL=1 to have each speaker's utterances in a
// condition be one call (the decoder adapts to the line from one
// utterance to the next).
func BenchmarkAccuracy(b *testing.B) {
	o := Options{}
	if os.Getenv("SPHINX_FRONT") == "native8k" {
		o.Front8k = Native8k
	}
	o.Args = strings.Fields(os.Getenv("SPHINX_ARGS"))
	envOpts(&o)
	r := newRec(b, o)
	syn := newSynth(b)
	speechtest.PerCall = os.Getenv("SPHINX_PER_CALL") != ""
	var table strings.Builder
	for b.Loop() {
		table.Reset()
		fmt.Fprintf(&table, "| lang | condition | grammar | utterances | sentence accuracy | WER |\n|---|---|---|---|---|---|\n")
		for _, lang := range []string{"ro", "en"} {
			if f := os.Getenv("SPHINX_LANG"); f != "" && f != lang {
				continue
			}
			for _, c := range speechtest.Conditions() {
				if f := os.Getenv("SPHINX_COND"); f != "" && !slices.Contains(strings.Split(f, ","), c.Name) {
					continue
				}
				if o.Front8k == Native8k && c.Rate != 8000 {
					continue
				}
				sc := speechtest.Evaluate(stdoutLog{b}, r, syn, items(lang), speechtest.Voices(lang), c, os.Getenv("VERBOSE") != "")
				for _, k := range []string{"menu", "yesno", "digits", "digitsN", "all"} {
					s, ok := sc[k]
					if !ok {
						continue
					}
					fmt.Fprintf(&table, "| %s | %s | %s | %d | %.1f%% | %.1f%% |\n", lang, c.Name, k, s.Utterances, 100*s.SentenceAccuracy(), 100*s.WER())
				}
			}
		}
	}
	fmt.Println(table.String()) // b.Log truncates long output
}

// items returns the test set of lang, restricted to the grammar kinds
// named in $SPHINX_GRAMMAR (comma-separated) when it is set.
func items(lang string) []speechtest.Item {
	all := speechtest.Items(lang)
	f := os.Getenv("SPHINX_GRAMMAR")
	if f == "" {
		return all
	}
	want := map[string]bool{}
	for _, k := range strings.Split(f, ",") {
		want[strings.TrimSpace(k)] = true
	}
	var out []speechtest.Item
	for _, it := range all {
		if want[it.Grammar] {
			out = append(out, it)
		}
	}
	return out
}

// stdoutLog prints log lines on stdout: a benchmark's own log keeps only
// its first lines, and the list of misses is longer.
type stdoutLog struct{ testing.TB }

func (l stdoutLog) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// BenchmarkDigitsDev is the development set used to tune the digit
// pronunciations and grammar without tuning on the test set: other digit
// strings (every digit at least twice) and other voices than
// speechtest's, G.711 at 8 kHz, free-length digits grammar. It prints
// the sentence accuracy per language (VERBOSE=1 lists the misses;
// SPHINX_LANG, SPHINX_ARGS, SPHINX_PLAIN_DIGITS, SPHINX_FOLD_DIGITS as
// for BenchmarkAccuracy).
func BenchmarkDigitsDev(b *testing.B) {
	o := Options{Args: strings.Fields(os.Getenv("SPHINX_ARGS"))}
	envOpts(&o)
	r := newRec(b, o)
	syn := newSynth(b)
	strs := []string{"4096", "81", "7352", "90218", "6647", "3059", "12", "87", "5430", "9961"}
	voices := map[string][]speechtest.Voice{
		"ro": {{Lang: "ro", Variant: "m2", Speed: 160}, {Lang: "ro", Variant: "f4", Speed: 150}, {Lang: "ro", Variant: "m5", Speed: 175}},
		"en": {{Lang: "en-us", Variant: "m2", Speed: 160}, {Lang: "en", Variant: "f4", Speed: 150}, {Lang: "en-us", Variant: "m5", Speed: 175}},
	}
	c := speechtest.Conditions()[1]
	for b.Loop() {
		for _, lang := range []string{"ro", "en"} {
			if f := os.Getenv("SPHINX_LANG"); f != "" && f != lang {
				continue
			}
			var its []speechtest.Item
			for _, s := range strs {
				its = append(its, speechtest.Item{Lang: lang, Grammar: "digits", Say: speech.SpellDigits(lang, s), WantTag: s})
			}
			sc := speechtest.Evaluate(stdoutLog{b}, r, syn, its, voices[lang], c, os.Getenv("VERBOSE") != "")["digits"]
			fmt.Printf("dev %s %s digits: %v\n", lang, c.Name, sc)
		}
	}
}

func envOpts(o *Options) {
	o.PlainDigits = os.Getenv("SPHINX_PLAIN_DIGITS") != ""
	o.FoldDigits = os.Getenv("SPHINX_FOLD_DIGITS") != ""
	o.EnglishInRomanian = os.Getenv("SPHINX_EN_IN_RO") != ""
	o.PlainSpelling = os.Getenv("SPHINX_NO_DIACRITIC_VARIANTS") != ""
}

// TestDigitsWideband: spoken digits at 16 kHz (a wideband call) are
// decoded a second time with the utterance's own cepstral mean, and that
// recognizes more digit strings than the single pass (measured: 62 % ->
// 75 % in English, 12 % -> 50 % in Romanian with the length known).
func TestDigitsWideband(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 32 utterances twice")
	}
	syn := newSynth(t)
	c := speechtest.Conditions()[0] // clean 16 kHz
	var its []speechtest.Item
	for _, lang := range []string{"ro", "en"} {
		for _, it := range speechtest.Items(lang) {
			if it.Grammar == "digitsN" {
				its = append(its, it)
			}
		}
	}
	score := func(o Options) (n int) {
		r := newRec(t, o)
		for _, lang := range []string{"ro", "en"} {
			var l []speechtest.Item
			for _, it := range its {
				if it.Lang == lang {
					l = append(l, it)
				}
			}
			n += speechtest.Evaluate(t, r, syn, l, speechtest.Voices(lang)[:2], c, testing.Verbose())["all"].Correct
		}
		return n
	}
	plain, two := score(Options{PlainDigits: true}), score(Options{})
	t.Logf("digit strings right at 16 kHz: %d of %d with one pass, %d with the second pass", plain, 2*len(its), two)
	if two <= plain {
		t.Errorf("the second pass recognized %d digit strings, the single pass %d: want more", two, plain)
	}
}

// TestDigitsTelephoneFloor guards the digit accuracy on G.711 (known
// length, both languages, two voices) at the level measured
// (docs/speech.md) (espeak-ng voices; see the table
// for how far that is from a usable digit recognizer).
func TestDigitsTelephoneFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 16 utterances")
	}
	r := newRec(t, Options{})
	syn := newSynth(t)
	c := speechtest.Conditions()[1] // G.711 8 kHz
	for _, lang := range []string{"ro", "en"} {
		var l []speechtest.Item
		for _, it := range speechtest.Items(lang) {
			if it.Grammar == "digitsN" {
				l = append(l, it)
			}
		}
		sc := speechtest.Evaluate(t, r, syn, l, speechtest.Voices(lang)[:2], c, testing.Verbose())["all"]
		t.Logf("%s digits of known length on G.711: %v", lang, sc)
		if sc.Correct < 2 {
			t.Errorf("%s: %d of %d digit strings right on G.711, floor 2", lang, sc.Correct, sc.Utterances)
		}
	}
}

// BenchmarkVoices prints the accuracy per voice of the menu and yes/no
// answers (and of the escape phrases said in the other language) over
// G.711 µ-law and A-law, for the development voices (tuned on) and the
// held-out ones (never tuned on): go test -run '^$'
// -bench Voices -benchtime 1x -timeout 30m ./speech/sphinx/.
// SPHINX_PART=dev or heldout runs one part, SPHINX_LANG one language,
// SPHINX_COND one condition ("G.711 A-law 8 kHz"), VERBOSE=1 lists the
// misses, SPHINX_ARGS adds pocketsphinx arguments, SPHINX_NO_ESCAPES=1
// leaves the escape phrases out of the grammars, SPHINX_PER_CALL=1 makes
// each voice's answers in a condition one call, SPHINX_DUMP=FILE
// writes every outcome as JSON lines (for the confidence calibration),
// with the CPU time of the utterance's decodes ("cpu": the grammar's and
// the phone loop's, in ns of the decoding thread) and of the phone loop
// alone ("loopCPU"). SPHINX_LOOPS="beam/pbeam[/weight],..." decodes every
// utterance again with phone loops of those beams after the one the
// confidence uses, and dumps their scores and CPU times too ("loops", in
// that order; left out of "cpu"; with a weight, the loop runs on a phone
// bigram at that weight, phoneBigram; without, flat as the decoder's).
func BenchmarkVoices(b *testing.B) {
	o := Options{Args: strings.Fields(os.Getenv("SPHINX_ARGS"))}
	envOpts(&o)
	rec := newRec(b, o)
	r := &cpuRecognizer{r: rec}
	var loops []loopConf
	for _, f := range strings.Split(os.Getenv("SPHINX_LOOPS"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		l := loopConf{name: "_phones_" + f}
		fs := strings.Split(f, "/")
		if _, err := fmt.Sscanf(fs[0]+" "+fs[1], "%g %g", &l.beam, &l.pbeam); err != nil {
			b.Fatalf("SPHINX_LOOPS: %q: %v", f, err)
		}
		if len(fs) > 2 {
			l.lm = phoneBigram(b, rec, fs[2])
		}
		loops = append(loops, l)
	}
	syn := newSynth(b)
	if os.Getenv("SPHINX_NO_ESCAPES") != "" {
		speechtest.WithEscapes = false
		defer func() { speechtest.WithEscapes = true }()
	}
	speechtest.PerCall = os.Getenv("SPHINX_PER_CALL") != ""
	var dump *os.File
	if f := os.Getenv("SPHINX_DUMP"); f != "" {
		var err error
		if dump, err = os.Create(f); err != nil {
			b.Fatal(err)
		}
		defer dump.Close()
	}
	for b.Loop() {
		var table strings.Builder
		fmt.Fprintf(&table, "| lang | part | condition | voice | menu | yes/no | menu + yes/no | escapes (other language) |\n|---|---|---|---|---|---|---|---|\n")
		for _, lang := range []string{"ro", "en"} {
			if f := os.Getenv("SPHINX_LANG"); f != "" && f != lang {
				continue
			}
			var its []speechtest.Item
			for _, it := range speechtest.Items(lang) {
				if it.Grammar == "menu" || it.Grammar == "yesno" {
					its = append(its, it)
				}
			}
			its = append(its, speechtest.EscapeItems(lang)...)
			if os.Getenv("SPHINX_OOG") != "" {
				its = append(its, speechtest.OutOfGrammar(lang)...)
			}
			for _, part := range []string{"dev", "heldout"} {
				if f := os.Getenv("SPHINX_PART"); f != "" && f != part {
					continue
				}
				voices := speechtest.DevVoices(lang)
				if part == "heldout" {
					voices = speechtest.HeldOutVoices(lang)
				}
				for _, c := range speechtest.Telephone() {
					if f := os.Getenv("SPHINX_COND"); f != "" && f != c.Name {
						continue
					}
					var all []speechtest.Outcome
					for _, v := range voices {
						var raws []rawScores
						var extra [][]map[string]any
						rawHook = func(s *stream, d *decoder, pad []int16, raw rawScores) {
							raws = append(raws, raw)
							var ex []map[string]any
							for _, l := range loops {
								if !raw.loopOK {
									break
								}
								sc, cpu, ok := s.phoneLoop(d, pad, l)
								r.extra += cpu
								ex = append(ex, map[string]any{"beam": l.beam, "pbeam": l.pbeam, "lm": l.lm, "loop": sc, "cpu": cpu, "ok": ok})
							}
							extra = append(extra, ex)
						}
						r.cpus = nil
						out := speechtest.Run(stdoutLog{b}, r, syn, its, []speechtest.Voice{v}, c, os.Getenv("VERBOSE") != "")
						rawHook = nil
						all = append(all, out...)
						writeRow(&table, lang, part, c.Name, v.String(), speechtest.Tally(out))
						if dump != nil && len(raws) == len(out) && len(r.cpus) == len(out) {
							for i, oc := range out {
								r, cpu := raws[i], r.cpus[i]
								json.NewEncoder(dump).Encode(map[string]any{"outcome": oc, "part": part,
									"gram": r.gram, "frames": r.frames, "word": r.word, "wordFrames": r.wordFrames,
									"loop": r.loop, "loopOK": r.loopOK, "loopCPU": r.loopCPU, "cpu": cpu, "loops": extra[i]})
							}
						}
					}
					writeRow(&table, lang, part, c.Name, "**all**", speechtest.Tally(all))
				}
			}
		}
		fmt.Println(table.String())
	}
}

func writeRow(w io.Writer, lang, part, cond, voice string, sc speechtest.Scores) {
	both := sc["menu"]
	both.Utterances += sc["yesno"].Utterances
	both.Correct += sc["yesno"].Correct
	cell := func(s speechtest.Score) string {
		return fmt.Sprintf("%.1f%% (%d/%d)", 100*s.SentenceAccuracy(), s.Correct, s.Utterances)
	}
	fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", lang, part, cond, voice, cell(sc["menu"]), cell(sc["yesno"]), cell(both), cell(sc["escape"]))
}

// cpuRecognizer measures the CPU time of each stream of r, from NewStream
// to the end of Finish, on the decoding thread (the stream's goroutine is
// locked to its thread meanwhile; speechtest.Run makes each stream and
// finishes it on one goroutine, before the next), less extra.
type cpuRecognizer struct {
	r     *Recognizer
	cpus  []time.Duration // per finished stream
	extra time.Duration   // CPU time not to count (the hook's extra phone loops)
}

type cpuStream struct {
	speech.Stream
	r  *cpuRecognizer
	t0 time.Duration
}

func (c *cpuRecognizer) NewStream(ctx context.Context, o speech.StreamOptions) (speech.Stream, error) {
	runtime.LockOSThread()
	c.extra = 0
	t0 := threadCPU()
	st, err := c.r.NewStream(ctx, o)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return &cpuStream{Stream: st, r: c, t0: t0}, nil
}

func (s *cpuStream) Finish(ctx context.Context) (speech.Result, error) {
	res, err := s.Stream.Finish(ctx)
	s.r.cpus = append(s.r.cpus, threadCPU()-s.t0-s.r.extra)
	runtime.UnlockOSThread()
	return res, err
}

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phoneBigram writes an ARPA bigram of the CI phones counted from the
// CMU dictionary's pronunciations (SIL around each word; add-one
// smoothing, so every pair is present and the loop stays unconstrained),
// its log-probabilities times the weight k (pocketsphinx multiplies them
// by -lw as well), and returns its path.
func phoneBigram(b *testing.B, r *Recognizer, k string) string {
	if err := r.loadDict(); err != nil {
		b.Fatal(err)
	}
	var alpha float64
	if _, err := fmt.Sscan(k, &alpha); err != nil {
		b.Fatalf("phone bigram weight %q: %v", k, err)
	}
	uni := map[string]float64{}
	bi := map[[2]string]float64{}
	r.cmudict.each(func(p string) {
		ph := append(append([]string{"SIL"}, strings.Fields(p)...), "SIL")
		for i, x := range ph {
			uni[x]++
			if i > 0 {
				bi[[2]string{ph[i-1], x}]++
			}
		}
	})
	var names []string
	var tot float64
	for x, c := range uni {
		names = append(names, x)
		tot += c
	}
	slices.Sort(names)
	var w strings.Builder
	fmt.Fprintf(&w, "\\data\\\nngram 1=%d\nngram 2=%d\n\n\\1-grams:\n", len(names), len(names)*len(names))
	for _, x := range names {
		fmt.Fprintf(&w, "%.5f %s 0.0000\n", alpha*math.Log10(uni[x]/tot), x)
	}
	fmt.Fprintf(&w, "\n\\2-grams:\n")
	for _, x := range names {
		row := uni[x] + float64(len(names))
		for _, y := range names {
			fmt.Fprintf(&w, "%.5f %s %s\n", alpha*math.Log10((bi[[2]string{x, y}]+1)/row), x, y)
		}
	}
	fmt.Fprintf(&w, "\n\\end\\\n")
	f := filepath.Join(b.TempDir(), "phones-"+k+".arpa")
	if err := os.WriteFile(f, []byte(w.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return f
}
