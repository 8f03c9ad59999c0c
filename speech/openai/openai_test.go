package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/speechtest"
	"github.com/govline/ivr/speech/sphinx"
)

const testKey = "sk-test"

// server speaks the OpenAI audio API as documented: multipart
// transcriptions answered in verbose_json (recognized here by pocketsphinx
// with a grammar made of the prompt's phrases, as a Whisper server would
// be biased by it), and speech answered as a chunked stream of 24 kHz
// 16-bit PCM (rendered by espeak-ng).
type server struct {
	t   testing.TB
	rec *sphinx.Recognizer
	syn *espeak.Synth
	// fail makes every request answer this status.
	fail int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	apiErr := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error"}})
	}
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		apiErr(http.StatusUnauthorized, "Incorrect API key provided")
		return
	}
	if s.fail != 0 {
		apiErr(s.fail, "server overloaded")
		return
	}
	switch r.URL.Path {
	case "/v1/audio/transcriptions":
		s.transcribe(w, r, apiErr)
	case "/v1/audio/speech":
		s.speak(w, r, apiErr)
	default:
		apiErr(http.StatusNotFound, "unknown endpoint")
	}
}

func (s *server) transcribe(w http.ResponseWriter, r *http.Request, apiErr func(int, string)) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		apiErr(http.StatusBadRequest, "not multipart: "+err.Error())
		return
	}
	if r.FormValue("model") == "" || r.FormValue("response_format") != "verbose_json" {
		apiErr(http.StatusBadRequest, "model and response_format=verbose_json expected")
		return
	}
	lang := r.FormValue("language")
	f, _, err := r.FormFile("file")
	if err != nil {
		apiErr(http.StatusBadRequest, "file missing")
		return
	}
	defer f.Close()
	pcm, rate, err := audio.ReadWAV(f)
	if err != nil {
		apiErr(http.StatusBadRequest, "bad audio: "+err.Error())
		return
	}
	g := &speech.Grammar{}
	for _, p := range strings.Split(r.FormValue("prompt"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			g.Add(p)
		}
	}
	if len(g.Phrases) == 0 {
		g = speech.YesNo(lang)
	}
	st, err := s.rec.NewStream(r.Context(), speech.StreamOptions{Lang: lang, Rate: rate, Grammar: g})
	if err != nil {
		apiErr(http.StatusBadRequest, err.Error())
		return
	}
	for _, fr := range speechtest.Frames(pcm, rate) {
		st.Write(fr)
	}
	res, err := st.Finish(r.Context())
	if err != nil {
		apiErr(http.StatusInternalServerError, err.Error())
		return
	}
	text := res.Text
	if text != "" {
		text = " " + strings.ToUpper(text[:1]) + text[1:] + "." // as Whisper writes it
	}
	var words []map[string]any
	for _, wd := range res.Words {
		words = append(words, map[string]any{"word": wd.Text, "start": wd.Start.Seconds(), "end": wd.End.Seconds()})
	}
	dur := float64(len(pcm)) / float64(rate)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"task": "transcribe", "language": lang, "duration": dur, "text": text,
		"segments": []map[string]any{{"id": 0, "start": 0, "end": dur, "text": text, "avg_logprob": -0.25, "no_speech_prob": 0.02}},
		"words":    words,
	})
}

func (s *server) speak(w http.ResponseWriter, r *http.Request, apiErr func(int, string)) {
	var req speechRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiErr(http.StatusBadRequest, "bad JSON")
		return
	}
	if req.ResponseFormat != "pcm" || req.Input == "" || req.Model == "" {
		apiErr(http.StatusBadRequest, "want model, input and response_format pcm")
		return
	}
	lang := map[string]string{"ioana": "ro", "alloy": "en"}[req.Voice]
	if lang == "" {
		apiErr(http.StatusBadRequest, "unknown voice "+req.Voice)
		return
	}
	a, err := s.syn.Synthesize(r.Context(), speech.SynthRequest{Text: req.Input, Lang: lang, Rate: 16000})
	if err != nil {
		apiErr(http.StatusBadRequest, err.Error())
		return
	}
	defer a.Close()
	w.Header().Set("Content-Type", "audio/pcm")
	w.WriteHeader(http.StatusOK)
	rs, _ := audio.NewResampler(16000, pcmRate)
	frame := make([]int16, 320)
	up := make([]int16, 480)
	var chunk bytes.Buffer
	for i := 0; a.ReadFrame(frame) == nil; i++ {
		n := rs.Process(up, frame)
		for _, v := range up[:n] {
			chunk.WriteByte(byte(v))
			chunk.WriteByte(byte(uint16(v) >> 8))
		}
		if i%5 == 4 { // 100 ms chunks, odd sizes on purpose now and then
			cut := chunk.Len()
			if i%15 == 4 {
				cut--
			}
			if _, err := w.Write(chunk.Next(cut)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
	w.Write(chunk.Bytes())
}

func newServer(t testing.TB) (*server, *httptest.Server) {
	rec, err := sphinx.New(sphinx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	syn, err := espeak.New(espeak.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, rec: rec, syn: syn}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); rec.Close() })
	return s, ts
}

func cfg(ts *httptest.Server) Config {
	return Config{BaseURL: ts.URL + "/v1", APIKey: testKey, Voices: map[string]string{"ro": "ioana", "en": "alloy"}}
}

func TestRecognizerConformance(t *testing.T) {
	_, ts := newServer(t)
	r, err := NewRecognizer(cfg(ts))
	if err != nil {
		t.Fatal(err)
	}
	syn, _ := espeak.New(espeak.Options{})
	speechtest.TestRecognizer(t, r, syn, []speechtest.RecognizerCase{
		{Lang: "en", Grammar: speech.YesNo("en"), Say: "yes", WantTag: "yes", SynthLang: "en-us"},
		{Lang: "ro", Grammar: speechtest.ShortMenu(), Say: "pașaportul", WantTag: "pașaport"},
	})
}

func TestSynthesizerConformance(t *testing.T) {
	_, ts := newServer(t)
	s, err := NewSynthesizer(cfg(ts))
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"ro", "en"} {
		t.Run(lang, func(t *testing.T) { speechtest.TestSynthesizer(t, s, lang) })
	}
}

// The answer's fields reach the Result: text normalized, tag, word times
// and a confidence from the segments.
func TestTranscriptionResult(t *testing.T) {
	_, ts := newServer(t)
	r, _ := NewRecognizer(cfg(ts))
	syn, _ := espeak.New(espeak.Options{})
	pcm := speechtest.Render(t, syn, speech.SynthRequest{Text: "operator", Lang: "ro", Rate: 8000})
	st, _ := r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000, Grammar: speechtest.ShortMenu()})
	for _, f := range speechtest.Frames(pcm, 8000) {
		st.Write(f)
	}
	res, err := st.Finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "operator" || res.Tag != "operator" || len(res.Words) != 1 || res.Words[0].End <= res.Words[0].Start {
		t.Fatalf("result %+v", res)
	}
	if res.Confidence < 0.7 || res.Confidence > 0.8 { // exp(-0.25)*0.98
		t.Fatalf("confidence %v, want exp(-0.25)*(1-0.02)", res.Confidence)
	}
}

// Failures are speech.ErrEngine with the server's message (the fallback
// ladder's cue), never a hang.
func TestErrors(t *testing.T) {
	s, ts := newServer(t)
	bad := cfg(ts)
	bad.APIKey = "wrong"
	r, _ := NewRecognizer(bad)
	st, _ := r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
	st.Write(make([]int16, 160))
	if _, err := st.Finish(context.Background()); !errors.Is(err, speech.ErrEngine) || !strings.Contains(err.Error(), "Incorrect API key") {
		t.Errorf("wrong key: %v", err)
	}
	syn, _ := NewSynthesizer(bad)
	if _, err := syn.Synthesize(context.Background(), speech.SynthRequest{Text: "x", Lang: "ro", Rate: 8000}); !errors.Is(err, speech.ErrEngine) || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong key: %v", err)
	}
	s.fail = http.StatusServiceUnavailable
	r, _ = NewRecognizer(cfg(ts))
	st, _ = r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
	if _, err := st.Finish(context.Background()); !errors.Is(err, speech.ErrEngine) || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v", err)
	}
	// A server that never answers: the configured timeout ends the wait.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices the client leaving only after the body
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	hc := Config{BaseURL: hang.URL + "/v1", Timeout: 200 * time.Millisecond}
	r, _ = NewRecognizer(hc)
	st, _ = r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
	start := time.Now()
	if _, err := st.Finish(context.Background()); !errors.Is(err, speech.ErrEngine) || time.Since(start) > 5*time.Second {
		t.Errorf("hanging server: %v after %v", err, time.Since(start))
	}
	sy, _ := NewSynthesizer(hc)
	if _, err := sy.Synthesize(context.Background(), speech.SynthRequest{Text: "x", Lang: "ro", Rate: 8000}); !errors.Is(err, speech.ErrEngine) {
		t.Errorf("hanging server: %v", err)
	}
	// Not JSON.
	junk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>proxy error</html>") }))
	defer junk.Close()
	r, _ = NewRecognizer(Config{BaseURL: junk.URL + "/v1"})
	st, _ = r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
	if _, err := st.Finish(context.Background()); !errors.Is(err, speech.ErrEngine) {
		t.Errorf("junk answer: %v", err)
	}
	if _, err := NewRecognizer(Config{BaseURL: "ftp://x"}); err == nil {
		t.Error("ftp base URL accepted")
	}
}
