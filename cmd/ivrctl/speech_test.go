package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/govline/ivr/audio"
)

// say renders text, transcribe hears it back through a grammar file: the
// two commands a designer uses to try a prompt and a grammar.
func TestSpeechSayTranscribe(t *testing.T) {
	dir := t.TempDir()
	wav := filepath.Join(dir, "p.wav")
	var out, errb bytes.Buffer
	if code := run([]string{"speech", "say", "--lang", "ro", "-o", wav, "pașaportul"}, &out, &errb); code != exitOK {
		t.Fatalf("say: exit %d: %s", code, errb.String())
	}
	pcm, err := audio.LoadWAVFile(wav, 8000)
	if err != nil || len(pcm) < 4000 {
		t.Fatalf("say wrote %d samples: %v", len(pcm), err)
	}
	gram := filepath.Join(dir, "menu.txt")
	os.WriteFile(gram, []byte("# main menu\nbuletin: buletin | buletinul\npașaport: pașaport | pașaportul\ncont\noperator\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"speech", "transcribe", "--lang", "ro", "--grammar", gram, "--json", wav}, &out, &errb); code != exitOK {
		t.Fatalf("transcribe: exit %d: %s", code, errb.String())
	}
	var tr transcript
	if err := json.Unmarshal(out.Bytes(), &tr); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if tr.Tag != "pașaport" || tr.Rate != 8000 || len(tr.Words) == 0 {
		t.Fatalf("transcript %+v", tr)
	}
	// Text output with partials, at 16 kHz, English, default grammar.
	wav16 := filepath.Join(dir, "yes.wav")
	if code := run([]string{"speech", "say", "--lang", "en", "--rate", "16000", "-o", wav16, "passport"}, &out, &errb); code != exitOK {
		t.Fatalf("say en: %s", errb.String())
	}
	out.Reset()
	if code := run([]string{"speech", "transcribe", "--lang", "en", wav16}, &out, &errb); code != exitOK {
		t.Fatalf("transcribe en: %s", errb.String())
	}
	if !strings.Contains(out.String(), "tag             passport") || !strings.Contains(out.String(), "partial") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestSpeechErrors(t *testing.T) {
	dir := t.TempDir()
	notWav := filepath.Join(dir, "x.wav")
	os.WriteFile(notWav, []byte("not a wav file at all"), 0o644)
	badGram := filepath.Join(dir, "g.txt")
	os.WriteFile(badGram, []byte("digits many\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"speech"}, exitUsage, "missing subcommand"},
		{[]string{"speech", "shout"}, exitUsage, "unknown subcommand"},
		{[]string{"speech", "say", "hello"}, exitUsage, "-o OUT.wav is required"},
		{[]string{"speech", "say", "-o", filepath.Join(dir, "o.wav")}, exitUsage, "no text"},
		{[]string{"speech", "say", "--lang", "fr", "-o", filepath.Join(dir, "o.wav"), "x"}, exitUsage, "want ro or en"},
		{[]string{"speech", "say", "--rate", "44100", "-o", filepath.Join(dir, "o.wav"), "x"}, exitUsage, "sample rate"},
		{[]string{"speech", "transcribe"}, exitUsage, "want one WAV file"},
		{[]string{"speech", "transcribe", filepath.Join(dir, "missing.wav")}, exitError, "no such file"},
		{[]string{"speech", "transcribe", notWav}, exitError, "bad WAV"},
		{[]string{"speech", "transcribe", "--grammar", badGram, notWav}, exitError, "digits N"},
		{[]string{"speech", "transcribe", "--lang", "de", notWav}, exitUsage, "want ro or en"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errb.String(), c.code, c.msg)
		}
	}
}

// An administrator tries the line's network server with the same commands:
// transcribe sends the WAV to an OpenAI-compatible transcription server
// and matches its text to the grammar; say writes what its speech
// endpoint returns.
func TestSpeechNetworkEngine(t *testing.T) {
	var model, lang atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/audio/transcriptions":
			if err := r.ParseMultipartForm(1 << 20); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			model.Store(r.FormValue("model"))
			lang.Store(r.FormValue("language"))
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"text":" Pașaportul.","language":"romanian","duration":1.1,`+
				`"segments":[{"start":0,"end":1.1,"text":" Pașaportul.","avg_logprob":-0.1,"no_speech_prob":0.01}],`+
				`"words":[{"word":"Pașaportul","start":0.2,"end":0.9}]}`)
		case "/v1/audio/speech":
			w.Header().Set("Content-Type", "audio/pcm")
			w.Write(make([]byte, 2*24000)) // one second at 24 kHz
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	wav := filepath.Join(dir, "n.wav")
	var out, errb bytes.Buffer
	if code := run([]string{"speech", "say", "--engine", "openai", "--url", srv.URL + "/v1", "--voice", "alloy", "-o", wav, "pașaportul"}, &out, &errb); code != exitOK {
		t.Fatalf("say: exit %d: %s", code, errb.String())
	}
	if pcm, err := audio.LoadWAVFile(wav, 8000); err != nil || len(pcm) < 8000 || len(pcm) > 8160 {
		t.Fatalf("say wrote %d samples (%v), want the server's second", len(pcm), err)
	}
	out.Reset()
	if code := run([]string{"speech", "transcribe", "--engine", "openai", "--url", srv.URL + "/v1", wav}, &out, &errb); code != exitOK {
		t.Fatalf("transcribe: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "final           pașaportul") || !strings.Contains(out.String(), "tag             passport") {
		t.Errorf("output:\n%s", out.String())
	}
	if model.Load() != "whisper-1" || lang.Load() != "ro" {
		t.Errorf("server got model %v, language %v", model.Load(), lang.Load())
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"speech", "transcribe", "--engine", "nuance", wav}, exitUsage, "want embedded, vosk, openai or sherpa"},
		{[]string{"speech", "say", "--engine", "vosk", "-o", wav, "x"}, exitUsage, "want embedded, openai or sherpa"},
		{[]string{"speech", "transcribe", "--engine", "openai", "--url", "http://127.0.0.1:9/v1", wav}, exitError, "speech: engine failure"},
		{[]string{"speech", "transcribe", "--engine", "sherpa", "--models", filepath.Join(dir, "none"), wav}, exitError, "none"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.msg)
		}
	}
}
