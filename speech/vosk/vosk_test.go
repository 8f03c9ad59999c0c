package vosk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/speechtest"
	"github.com/govline/ivr/speech/sphinx"
)

// server speaks the Vosk WebSocket protocol (asr_server.py): config, then
// audio answered by partials, then eof answered by the final result. It
// recognizes with pocketsphinx, the phrase list as its grammar.
type server struct {
	rec *sphinx.Recognizer
	// lang is the language of the server's model (Vosk runs one model).
	lang string
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	_, b, err := c.Read(ctx)
	if err != nil {
		return
	}
	var cfg struct {
		Config config `json:"config"`
	}
	if json.Unmarshal(b, &cfg) != nil || cfg.Config.SampleRate == 0 {
		c.Close(websocket.StatusPolicyViolation, "config expected")
		return
	}
	rate := cfg.Config.SampleRate
	g := &speech.Grammar{}
	digits := map[string]bool{}
	for _, d := range speech.DigitWords(s.lang) {
		digits[d] = true
	}
	for _, p := range cfg.Config.PhraseList {
		switch {
		case p == "[unk]":
		case digits[p]:
			g.Digits = 13
		default:
			g.Add(p)
		}
	}
	st, err := s.rec.NewStream(ctx, speech.StreamOptions{Lang: s.lang, Rate: rate, Grammar: g})
	if err != nil {
		c.Close(websocket.StatusInternalError, err.Error())
		return
	}
	var pending []int16
	n := rate / 50
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		return c.Write(ctx, websocket.MessageText, b) == nil
	}
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			st.Finish(ctx)
			return
		}
		if typ == websocket.MessageText {
			if strings.Contains(string(b), `"eof"`) {
				res, _ := st.Finish(ctx)
				var words []map[string]any
				for _, w := range res.Words {
					words = append(words, map[string]any{"word": w.Text, "start": w.Start.Seconds(), "end": w.End.Seconds(), "conf": 1.0})
				}
				if cfg.Config.MaxAlternatives > 0 {
					alts := []map[string]any{{"confidence": 250.5, "result": words, "text": res.Text}}
					alts = append(alts, map[string]any{"confidence": 248.5, "result": []any{}, "text": "[unk]"})
					send(map[string]any{"alternatives": alts})
				} else {
					send(map[string]any{"result": words, "text": res.Text})
				}
				c.Close(websocket.StatusNormalClosure, "")
				return
			}
			continue
		}
		for i := 0; i+1 < len(b); i += 2 {
			pending = append(pending, int16(uint16(b[i])|uint16(b[i+1])<<8))
		}
		for len(pending) >= n {
			st.Write(pending[:n])
			pending = pending[n:]
		}
		p, _ := st.Partial()
		if !send(map[string]any{"partial": p.Text}) {
			st.Finish(ctx)
			return
		}
	}
}

func newServer(t testing.TB, lang string) *httptest.Server {
	rec, err := sphinx.New(sphinx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(&server{rec: rec, lang: lang})
	t.Cleanup(func() { ts.Close(); rec.Close() })
	return ts
}

func wsURL(ts *httptest.Server) string { return "ws" + strings.TrimPrefix(ts.URL, "http") }

func TestConformance(t *testing.T) {
	syn, err := espeak.New(espeak.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"ro", "en"} {
		t.Run(lang, func(t *testing.T) {
			r, err := New(Config{URL: wsURL(newServer(t, lang))})
			if err != nil {
				t.Fatal(err)
			}
			cases := map[string][]speechtest.RecognizerCase{
				"ro": {{Lang: "ro", Grammar: speechtest.ShortMenu(), Say: "pașaportul", WantTag: "pașaport", Partials: true}},
				"en": {{Lang: "en", Grammar: speech.YesNo("en"), Say: "yes", WantTag: "yes", SynthLang: "en-us", Partials: true}},
			}[lang]
			speechtest.TestRecognizer(t, r, syn, cases)
		})
	}
}

// The final answer's alternatives become the Result's, with a confidence
// from their scores (softmax of 250.5 against 248.5).
func TestAlternatives(t *testing.T) {
	syn, _ := espeak.New(espeak.Options{})
	r, _ := New(Config{URL: wsURL(newServer(t, "ro"))})
	pcm := speechtest.Render(t, syn, speech.SynthRequest{Text: "operator", Lang: "ro", Rate: 8000})
	st, err := r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000, Grammar: speechtest.ShortMenu()})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range speechtest.Frames(pcm, 8000) {
		st.Write(f)
	}
	res, err := st.Finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Tag != "operator" || len(res.Words) != 1 || len(res.Alternatives) != 1 || res.Alternatives[0].Text != "" {
		t.Fatalf("result %+v", res)
	}
	if want := 1 / (1 + 0.1353352832366127); res.Confidence < want-0.001 || res.Confidence > want+0.001 {
		t.Fatalf("confidence %v, want %v", res.Confidence, want)
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(Config{URL: "http://x"}); err == nil {
		t.Error("http URL accepted")
	}
	// Nobody listening.
	r, _ := New(Config{URL: "ws://127.0.0.1:1", DialTimeout: time.Second})
	if _, err := r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000}); !errors.Is(err, speech.ErrEngine) {
		t.Errorf("dial refused: %v", err)
	}
	// A server that accepts and never answers the eof: Finish gives up.
	mute := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	}))
	defer mute.Close()
	r, _ = New(Config{URL: wsURL(mute), FinishTimeout: 300 * time.Millisecond})
	st, err := r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	st.Write(make([]int16, 160))
	start := time.Now()
	if _, err := st.Finish(context.Background()); !errors.Is(err, speech.ErrEngine) || time.Since(start) > 5*time.Second {
		t.Errorf("mute server: %v after %v", err, time.Since(start))
	}
	// A server that hangs up mid-utterance.
	rude := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.Read(r.Context())
		c.Close(websocket.StatusInternalError, "model crashed")
	}))
	defer rude.Close()
	r, _ = New(Config{URL: wsURL(rude)})
	st, _ = r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
	var werr error
	for i := 0; i < 50 && werr == nil; i++ {
		werr = st.Write(make([]int16, 160))
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := st.Finish(context.Background()); !errors.Is(err, speech.ErrEngine) {
		t.Errorf("server hung up: Finish %v (Write %v)", err, werr)
	}
}
