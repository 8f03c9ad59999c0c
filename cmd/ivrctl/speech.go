package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/speechtest"
	"github.com/govline/ivr/speech/sphinx"
)

const speechUsage = `Usage:
  ivrctl speech transcribe [--lang ro|en] [--grammar FILE] [--json] FILE.wav
  ivrctl speech say [--lang ro|en] [--voice VARIANT] [--speed WPM] [--rate 8000|16000] -o OUT.wav "text"

transcribe runs the embedded recognizer (pocketsphinx) on a WAV file (16-bit
PCM, any rate; other rates than 8000/16000 Hz are converted to 16000) the
way a call would: in 20 ms frames, printing partial results as they change.
Recognition is restricted to a grammar: --grammar FILE has one phrase per
line ("tag: variant | variant", or just "variant | variant"), "digits N"
for up to N spoken digits, # for comments. Without --grammar it uses the
main menu, yes/no and up to 13 digits of the language.

say renders text with the embedded synthesizer (espeak-ng) into a mono
WAV file, at 8000 Hz (telephone) unless --rate says otherwise.
`

func runSpeech(args []string, stdout, stderr io.Writer) int {
	return group{name: "speech", usage: speechUsage, missing: " (transcribe or say)", subs: map[string]command{
		"transcribe": runTranscribe,
		"say":        runSay,
	}}.run(args, stdout, stderr)
}

func checkLang(lang string) error {
	if lang != "ro" && lang != "en" {
		return fmt.Errorf("--lang %q: want ro or en", lang)
	}
	return nil
}

// defaultGrammar is what transcribe listens for without --grammar.
func defaultGrammar(lang string) *speech.Grammar {
	g := speechtest.MenuGrammar(lang)
	g.Phrases = append(g.Phrases, speech.YesNo(lang).Phrases...)
	g.Digits = 13
	return g
}

type transcript struct {
	File       string        `json:"file"`
	Lang       string        `json:"lang"`
	Rate       int           `json:"rate"`
	Duration   string        `json:"duration"`
	Text       string        `json:"text"`
	Tag        string        `json:"tag"`
	Words      []speech.Word `json:"words,omitempty"`
	Partials   []string      `json:"partials,omitempty"`
	Alternates []string      `json:"alternatives,omitempty"`
}

func runTranscribe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("speech transcribe", "ivrctl speech transcribe [--lang ro|en] [--grammar FILE] [--json] FILE.wav", stderr)
	dataFlag(fs) // accepted for symmetry with the other commands; unused
	lang := fs.String("lang", "ro", "language of the speech: `ro` or en")
	gfile := fs.String("grammar", "", "grammar `FILE` (see ivrctl speech help)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one WAV file, got %d arguments", len(pos))
	}
	if err := checkLang(*lang); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	g := defaultGrammar(*lang)
	if *gfile != "" {
		f, err := os.Open(*gfile)
		if err != nil {
			return fail(stderr, err)
		}
		g, err = speech.ParseGrammar(f)
		f.Close()
		if err != nil {
			return fail(stderr, fmt.Errorf("%s: %w", *gfile, err))
		}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fail(stderr, err)
	}
	pcm, rate, err := audio.ReadWAV(f)
	f.Close()
	if err != nil {
		return fail(stderr, fmt.Errorf("%s: %w", pos[0], err))
	}
	if rate != 8000 && rate != 16000 {
		if pcm, err = audio.Resample(pcm, rate, 16000); err != nil {
			return fail(stderr, err)
		}
		rate = 16000
	}
	rec, err := sphinx.New(sphinx.Options{})
	if err != nil {
		return fail(stderr, err)
	}
	defer rec.Close()
	ctx := context.Background()
	st, err := rec.NewStream(ctx, speech.StreamOptions{Lang: *lang, Rate: rate, Grammar: g})
	if err != nil {
		return fail(stderr, err)
	}
	out := transcript{File: pos[0], Lang: *lang, Rate: rate,
		Duration: (time.Duration(len(pcm)) * time.Second / time.Duration(rate)).Round(10 * time.Millisecond).String()}
	for i, fr := range speechtest.Frames(pcm, rate) {
		if err := st.Write(fr); err != nil {
			st.Finish(ctx)
			return fail(stderr, err)
		}
		if p, changed := st.Partial(); changed && p.Text != "" {
			out.Partials = append(out.Partials, p.Text)
			if !*asJSON {
				fmt.Fprintf(stdout, "partial %6s  %s\n", (time.Duration(i+1) * audio.FrameDuration).String(), p.Text)
			}
		}
	}
	res, err := st.Finish(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	out.Text, out.Tag, out.Words = res.Text, res.Tag, res.Words
	for _, a := range res.Alternatives {
		out.Alternates = append(out.Alternates, a.Text)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(stderr, err)
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "final           %s\n", res.Text)
	if res.Tag != "" {
		fmt.Fprintf(stdout, "tag             %s\n", res.Tag)
	} else {
		fmt.Fprintf(stdout, "tag             (no match in the grammar)\n")
	}
	for _, w := range res.Words {
		fmt.Fprintf(stdout, "word  %6s-%-6s %s\n", w.Start, w.End, w.Text)
	}
	return exitOK
}

func runSay(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("speech say", `ivrctl speech say [--lang ro|en] [--voice VARIANT] [--speed WPM] [--rate 8000|16000] -o OUT.wav "text"`, stderr)
	dataFlag(fs)
	lang := fs.String("lang", "ro", "language: `ro` or en")
	voice := fs.String("voice", "", "espeak-ng voice `VARIANT` (m1..m7, f1..f5, ...)")
	speed := fs.Int("speed", 0, fmt.Sprintf("speaking rate in words per minute (default %d)", espeak.DefaultSpeed))
	rate := fs.Int("rate", 8000, "sample rate of the WAV: 8000 or 16000 `Hz`")
	outPath := fs.String("o", "", "output WAV `FILE` (required)")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if *outPath == "" {
		return usageError(fs, stderr, "-o OUT.wav is required")
	}
	text := strings.TrimSpace(strings.Join(pos, " "))
	if text == "" {
		return usageError(fs, stderr, "no text to say")
	}
	if err := checkLang(*lang); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	syn, err := espeak.New(espeak.Options{CacheBytes: -1})
	if err != nil {
		return fail(stderr, err)
	}
	a, err := syn.Synthesize(context.Background(), speech.SynthRequest{Text: text, Lang: *lang, Voice: *voice, Speed: *speed, Rate: *rate})
	if err != nil {
		if errors.Is(err, speech.ErrUnsupported) {
			return usageError(fs, stderr, "%v", err)
		}
		return fail(stderr, err)
	}
	pcm, err := speech.ReadAll(a, *rate)
	if err != nil {
		return fail(stderr, err)
	}
	f, err := os.Create(*outPath)
	if err != nil {
		return fail(stderr, err)
	}
	if err := audio.WriteWAV(f, pcm, *rate, 1); err != nil {
		f.Close()
		return fail(stderr, err)
	}
	if err := f.Close(); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "wrote %s: %v at %d Hz\n", *outPath, time.Duration(len(pcm))*time.Second/time.Duration(*rate), *rate)
	return exitOK
}
