package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/openai"
	"github.com/govline/ivr/speech/sherpa"
	"github.com/govline/ivr/speech/speechtest"
	"github.com/govline/ivr/speech/sphinx"
	"github.com/govline/ivr/speech/vosk"
)

const speechUsage = `Usage:
  ivrctl speech transcribe [--lang ro|en] [--grammar FILE] [--json] [ENGINE] FILE.wav
  ivrctl speech say [--lang ro|en] [--voice V] [--speed WPM] [--rate 8000|16000] [ENGINE] -o OUT.wav "text"

transcribe runs a recognizer on a WAV file (16-bit PCM, any rate; other
rates than 8000/16000 Hz are converted to 16000) the way a call would: in
20 ms frames, printing partial results as they change. Recognition is
restricted to (or, for open-vocabulary engines, matched against) a grammar:
--grammar FILE has one phrase per line ("tag: variant | variant", or just
"variant | variant"), "digits N" for up to N spoken digits, # for comments.
Without --grammar it uses the main menu, yes/no and up to 13 digits of the
language.

say renders text into a mono WAV file, at 8000 Hz (telephone) unless
--rate says otherwise.

ENGINE is the embedded one (pocketsphinx, espeak-ng) unless:
  --engine vosk --url ws://HOST:2700             a Vosk server (transcribe)
  --engine openai --url http://HOST:PORT/v1 [--model M] [--key KEY]
                                                 an OpenAI-compatible audio API
  --engine sherpa --models DIR                   a sherpa-onnx model folder
                                                 (docs/speech.md)
With openai, --voice is the server's voice name; with sherpa, a speaker
number; with espeak-ng, a variant (m1..m7, f1..f5, ...).
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

// engineFlags are the flags that choose a speech engine.
type engineFlags struct {
	engine, url, model, key, models *string
}

func addEngineFlags(fs *flag.FlagSet) engineFlags {
	return engineFlags{
		engine: fs.String("engine", "embedded", "speech `ENGINE`: embedded, vosk, openai or sherpa"),
		url:    fs.String("url", "", "the server's `URL` (vosk: ws://HOST:2700; openai: http://HOST:PORT/v1)"),
		model:  fs.String("model", "", "the server's `MODEL` (openai; default whisper-1 or tts-1)"),
		key:    fs.String("key", os.Getenv("IVR_OPENAI_API_KEY"), "API `KEY` for openai (default $IVR_OPENAI_API_KEY)"),
		models: fs.String("models", "", "sherpa-onnx model `DIR`"),
	}
}

// recognizer returns the chosen recognizer and its release.
func (e engineFlags) recognizer(lang string) (speech.Recognizer, func(), error) {
	switch *e.engine {
	case "embedded":
		r, err := sphinx.New(sphinx.Options{})
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	case "vosk":
		r, err := vosk.New(vosk.Config{URL: *e.url})
		return r, func() {}, err
	case "openai":
		r, err := openai.NewRecognizer(openai.Config{BaseURL: *e.url, APIKey: *e.key, Model: cmp.Or(*e.model, "whisper-1")})
		return r, func() {}, err
	case "sherpa":
		r, err := sherpa.NewRecognizer(sherpa.Config{ASR: map[string]string{lang: *e.models}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	}
	return nil, nil, errUsage(fmt.Errorf("--engine %q: want embedded, vosk, openai or sherpa", *e.engine))
}

// synthesizer returns the chosen synthesizer and its release.
func (e engineFlags) synthesizer(lang string) (speech.Synthesizer, func(), error) {
	switch *e.engine {
	case "embedded":
		s, err := espeak.New(espeak.Options{CacheBytes: -1})
		return s, func() {}, err
	case "openai":
		s, err := openai.NewSynthesizer(openai.Config{BaseURL: *e.url, APIKey: *e.key, Model: cmp.Or(*e.model, "tts-1")})
		return s, func() {}, err
	case "sherpa":
		s, err := sherpa.NewSynthesizer(sherpa.Config{TTS: map[string]string{lang: *e.models}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	return nil, nil, errUsage(fmt.Errorf("--engine %q: want embedded, openai or sherpa", *e.engine))
}

// usageErr marks an error the user made on the command line.
type usageErr struct{ error }

func errUsage(err error) error { return usageErr{err} }

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
	fs := newFlagSet("speech transcribe", "ivrctl speech transcribe [--lang ro|en] [--grammar FILE] [--json] [--engine E --url U ...] FILE.wav", stderr)
	dataFlag(fs) // accepted for symmetry with the other commands; unused
	lang := fs.String("lang", "ro", "language of the speech: `ro` or en")
	gfile := fs.String("grammar", "", "grammar `FILE` (see ivrctl speech help)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	ef := addEngineFlags(fs)
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
	rec, release, err := ef.recognizer(*lang)
	if err != nil {
		if errors.As(err, new(usageErr)) {
			return usageError(fs, stderr, "%v", err)
		}
		return fail(stderr, err)
	}
	defer release()
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
	fs := newFlagSet("speech say", `ivrctl speech say [--lang ro|en] [--voice V] [--speed WPM] [--rate 8000|16000] [--engine E --url U ...] -o OUT.wav "text"`, stderr)
	dataFlag(fs)
	lang := fs.String("lang", "ro", "language: `ro` or en")
	voice := fs.String("voice", "", "`VOICE`: an espeak-ng variant (m1..m7, f1..f5, ...), the server's voice (openai) or a speaker number (sherpa)")
	ef := addEngineFlags(fs)
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
	syn, release, err := ef.synthesizer(*lang)
	if err != nil {
		if errors.As(err, new(usageErr)) {
			return usageError(fs, stderr, "%v", err)
		}
		return fail(stderr, err)
	}
	defer release()
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
