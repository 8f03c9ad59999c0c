// Package vosk is a network speech.Recognizer for a Vosk server
// (alphacep/vosk-server, websocket/asr_server.py, port 2700 by default),
// which runs Kaldi models, Romanian among them.
//
// The protocol, per utterance on its own WebSocket connection: the client
// sends a text message {"config": {"sample_rate": N, "words": 1,
// "max_alternatives": K, "phrase_list": [...]}}, then the audio as binary
// messages of 16-bit little-endian PCM; the server answers every message
// with one JSON text message, {"partial": "..."} while the phrase goes on
// or {"result": [{"word","start","end","conf"}...], "text": "..."} when its
// endpointer closed a phrase (with max_alternatives > 0 the results come
// as {"alternatives": [{"confidence", "result", "text"}...]}); the client
// ends with the text message {"eof" : 1}, answered by the final result.
//
// The grammar becomes the phrase_list (with "[unk]" so that other speech
// is not forced onto a phrase); the Tag is matched on the text.
package vosk

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/govline/ivr/speech"
)

// Config says where the server is.
type Config struct {
	URL string // "ws://127.0.0.1:2700"
	// DialTimeout bounds the connection set-up (0 = 3 s); FinishTimeout
	// the wait for the final result after the end of audio (0 = 5 s).
	DialTimeout, FinishTimeout time.Duration
	// Alternatives asks the server for this many alternatives (0 = 3).
	Alternatives int
}

// Recognizer is the Vosk client. Safe for concurrent use.
type Recognizer struct{ cfg Config }

var _ speech.Recognizer = (*Recognizer)(nil)

// New returns a client for cfg.
func New(cfg Config) (*Recognizer, error) {
	if !strings.HasPrefix(cfg.URL, "ws://") && !strings.HasPrefix(cfg.URL, "wss://") {
		return nil, fmt.Errorf("vosk: URL %q is not ws(s)://", cfg.URL)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 3 * time.Second
	}
	if cfg.FinishTimeout == 0 {
		cfg.FinishTimeout = 5 * time.Second
	}
	if cfg.Alternatives == 0 {
		cfg.Alternatives = 3
	}
	return &Recognizer{cfg: cfg}, nil
}

type config struct {
	SampleRate      int      `json:"sample_rate"`
	Words           int      `json:"words"`
	MaxAlternatives int      `json:"max_alternatives"`
	PhraseList      []string `json:"phrase_list,omitempty"`
}

// NewStream dials the server and sends the configuration.
func (r *Recognizer) NewStream(ctx context.Context, o speech.StreamOptions) (speech.Stream, error) {
	if err := speech.CheckRate(o.Rate); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	c, _, err := websocket.Dial(dctx, r.cfg.URL, nil)
	if err != nil {
		if e := ctx.Err(); e != nil {
			return nil, e
		}
		return nil, fmt.Errorf("%w: vosk: dial %s: %v", speech.ErrEngine, r.cfg.URL, err)
	}
	c.SetReadLimit(1 << 20)
	cfg := config{SampleRate: o.Rate, Words: 1, MaxAlternatives: r.cfg.Alternatives}
	if g := o.Grammar; g != nil {
		for _, p := range g.Phrases {
			cfg.PhraseList = append(cfg.PhraseList, p.Say...)
		}
		if g.Digits > 0 {
			cfg.PhraseList = append(cfg.PhraseList, speech.DigitWords(o.Lang)...)
		}
		cfg.PhraseList = append(cfg.PhraseList, "[unk]")
	}
	b, _ := json.Marshal(map[string]any{"config": cfg})
	if err := c.Write(dctx, websocket.MessageText, b); err != nil {
		c.CloseNow()
		return nil, fmt.Errorf("%w: vosk: config: %v", speech.ErrEngine, err)
	}
	s := &stream{r: r, ctx: ctx, o: o, c: c, done: make(chan struct{}), final: make(chan struct{}),
		buf: make([]byte, 2*len(make([]int16, o.Rate/50)))}
	go s.read()
	return s, nil
}

// message is any answer of the server.
type message struct {
	Partial      *string `json:"partial"`
	Text         *string `json:"text"`
	Result       []word  `json:"result"`
	Alternatives []struct {
		Confidence float64 `json:"confidence"`
		Text       string  `json:"text"`
		Result     []word  `json:"result"`
	} `json:"alternatives"`
}

type word struct {
	Word  string  `json:"word"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Conf  float64 `json:"conf"`
}

// stream is one utterance. The reader goroutine is owned by the stream:
// it stops when the connection closes (Finish closes it) and Finish joins
// it.
type stream struct {
	r    *Recognizer
	ctx  context.Context
	o    speech.StreamOptions
	c    *websocket.Conn
	buf  []byte
	fin  bool
	done chan struct{} // reader ended

	mu       sync.Mutex
	partial  speech.Result
	changed  bool
	phrases  []speech.Result // results of closed phrases
	eofSent  bool
	final    chan struct{} // closed when the answer to eof arrived
	finalGot bool
	err      error // the reader's error, if it failed before the final
}

func (s *stream) read() {
	defer close(s.done)
	for {
		_, b, err := s.c.Read(context.Background())
		if err != nil {
			s.mu.Lock()
			if !s.finalGot && s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			return
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			s.mu.Lock()
			s.err = fmt.Errorf("vosk: answer is not JSON: %v", err)
			s.mu.Unlock()
			s.c.CloseNow()
			return
		}
		s.mu.Lock()
		switch {
		case m.Partial != nil:
			text := speech.NormalizeText(strings.ReplaceAll(*m.Partial, "[unk]", ""))
			if text != s.partial.Text {
				s.partial = speech.Result{Text: text}
				if s.o.Grammar != nil {
					s.partial.Tag = s.o.Grammar.Match(s.o.Lang, text)
				}
				s.changed = true
			}
		default:
			s.phrases = append(s.phrases, toResult(m))
			if s.eofSent && !s.finalGot {
				s.finalGot = true
				close(s.final)
			}
		}
		s.mu.Unlock()
	}
}

func toResult(m message) speech.Result {
	words, text := m.Result, ""
	if m.Text != nil {
		text = *m.Text
	}
	var res speech.Result
	if len(m.Alternatives) > 0 {
		words, text = m.Alternatives[0].Result, m.Alternatives[0].Text
		// Vosk's alternative "confidence" is a log score, not a
		// probability: the best one's share of the n-best list (a
		// softmax) serves as its confidence.
		var sum float64
		for _, a := range m.Alternatives {
			sum += math.Exp(a.Confidence - m.Alternatives[0].Confidence)
		}
		res.Confidence = 1 / sum
		for _, a := range m.Alternatives[1:] {
			res.Alternatives = append(res.Alternatives, speech.Alternative{Text: speech.NormalizeText(strings.ReplaceAll(a.Text, "[unk]", ""))})
		}
	}
	res.Text = speech.NormalizeText(strings.ReplaceAll(text, "[unk]", ""))
	var conf float64
	for _, w := range words {
		if w.Word == "[unk]" {
			continue
		}
		res.Words = append(res.Words, speech.Word{Text: speech.NormalizeText(w.Word), Confidence: w.Conf,
			Start: time.Duration(w.Start * float64(time.Second)), End: time.Duration(w.End * float64(time.Second))})
		conf += w.Conf
	}
	if len(m.Alternatives) == 0 && len(res.Words) > 0 {
		res.Confidence = conf / float64(len(res.Words))
	}
	return res
}

func (s *stream) Write(frame []int16) error {
	if s.fin {
		return speech.ErrClosed
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if err := speech.CheckFrame(frame, s.o.Rate); err != nil {
		return err
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: vosk: %v", speech.ErrEngine, err)
	}
	for i, v := range frame {
		s.buf[2*i], s.buf[2*i+1] = byte(v), byte(uint16(v)>>8)
	}
	// A 20 ms frame fits the socket buffer: this returns at once unless
	// the connection is stuck, which the stream's context bounds.
	if err := s.c.Write(s.ctx, websocket.MessageBinary, s.buf); err != nil {
		if e := s.ctx.Err(); e != nil {
			return e
		}
		return fmt.Errorf("%w: vosk: send: %v", speech.ErrEngine, err)
	}
	return nil
}

func (s *stream) Partial() (speech.Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.changed
	s.changed = false
	return s.partial, c
}

func (s *stream) Finish(ctx context.Context) (speech.Result, error) {
	if s.fin {
		return speech.Result{}, speech.ErrClosed
	}
	s.fin = true
	defer func() {
		s.c.CloseNow()
		<-s.done
	}()
	if err := s.ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.r.cfg.FinishTimeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	s.mu.Lock()
	s.eofSent = true
	s.mu.Unlock()
	if err := s.c.Write(wctx, websocket.MessageText, []byte(`{"eof" : 1}`)); err != nil {
		return speech.Result{}, s.ctxErr(ctx, fmt.Errorf("%w: vosk: eof: %v", speech.ErrEngine, err))
	}
	select {
	case <-s.final:
	case <-s.done:
		s.mu.Lock()
		err := s.err
		got := s.finalGot
		s.mu.Unlock()
		if !got {
			return speech.Result{}, s.ctxErr(ctx, fmt.Errorf("%w: vosk: connection ended before the final result: %v", speech.ErrEngine, err))
		}
	case <-wctx.Done():
		return speech.Result{}, s.ctxErr(ctx, fmt.Errorf("%w: vosk: no final result within %v", speech.ErrEngine, s.r.cfg.FinishTimeout))
	}
	s.c.Close(websocket.StatusNormalClosure, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	// The utterance is every phrase the server closed, in order.
	res := speech.Result{Final: true}
	var texts []string
	var conf float64
	n := 0
	for _, p := range s.phrases {
		if p.Text == "" {
			continue
		}
		texts = append(texts, p.Text)
		res.Words = append(res.Words, p.Words...)
		conf += p.Confidence
		n++
		if len(s.phrases) == 1 || n == 1 {
			res.Alternatives = p.Alternatives
		}
	}
	res.Text = strings.Join(texts, " ")
	if n > 0 {
		res.Confidence = max(0, min(1, conf/float64(n)))
	}
	if s.o.Grammar != nil {
		res.Tag = s.o.Grammar.Match(s.o.Lang, res.Text)
		for i := range res.Alternatives {
			res.Alternatives[i].Tag = s.o.Grammar.Match(s.o.Lang, res.Alternatives[i].Text)
		}
	}
	return res, nil
}

// ctxErr prefers the context's error (the caller cancelled) to err.
func (s *stream) ctxErr(ctx context.Context, err error) error {
	if e := s.ctx.Err(); e != nil {
		return e
	}
	if e := ctx.Err(); e != nil {
		return e
	}
	return err
}
