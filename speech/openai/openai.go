// Package openai holds network speech engines that speak the
// OpenAI-compatible audio API, as served by OpenAI itself, whisper.cpp's
// server, faster-whisper servers (speaches, faster-whisper-server),
// LocalAI, kokoro-fastapi, openedai-speech and others:
//
//   - Recognizer: POST {BaseURL}/audio/transcriptions (multipart/form-data:
//     file = the utterance as a 16-bit WAV, model, language,
//     response_format=verbose_json, prompt = the grammar's phrases as a
//     hint, timestamp_granularities[]=word). Whisper-class models cover
//     Romanian. It recognizes whole utterances: no partial results; the
//     audio is sent at Finish.
//   - Synthesizer: POST {BaseURL}/audio/speech (JSON: model, input, voice,
//     response_format=pcm, speed); the answer is raw 16-bit little-endian
//     mono PCM at 24 kHz, read while it streams, so the first frames play
//     before the server has finished.
//
// BaseURL includes the version prefix ("http://127.0.0.1:8080/v1"). Errors
// wrap speech.ErrEngine (the fallback ladder moves to the embedded engine
// on them); the HTTP status and the server's message are in the text.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// Config says where the service is.
type Config struct {
	BaseURL string       // e.g. "http://127.0.0.1:8080/v1"
	APIKey  string       // sent as "Authorization: Bearer KEY" when set
	Model   string       // "whisper-1", "tts-1", or the server's model name
	Client  *http.Client // nil: a client with Timeout
	// Timeout bounds one request (0 = 15 s).
	Timeout time.Duration
	// Voices maps a language to the server's voice name (synthesis);
	// Voice in a request overrides it. "" falls back to "alloy".
	Voices map[string]string
}

func (c *Config) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	t := c.Timeout
	if t == 0 {
		t = 15 * time.Second
	}
	return &http.Client{Timeout: t}
}

// maxUtterance bounds the audio a stream buffers (2 minutes at 16 kHz).
const maxUtterance = 2 * 60 * 16000

// Recognizer is the transcription client. Safe for concurrent use.
type Recognizer struct{ cfg Config }

var _ speech.Recognizer = (*Recognizer)(nil)

// NewRecognizer returns a transcription client for cfg.
func NewRecognizer(cfg Config) (*Recognizer, error) {
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, fmt.Errorf("openai: base URL %q is not http(s)", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Model == "" {
		cfg.Model = "whisper-1"
	}
	return &Recognizer{cfg: cfg}, nil
}

// NewStream implements speech.Recognizer.
func (r *Recognizer) NewStream(ctx context.Context, o speech.StreamOptions) (speech.Stream, error) {
	if err := speech.CheckRate(o.Rate); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &utterance{r: r, ctx: ctx, o: o}, nil
}

// utterance buffers the audio of one stream until Finish.
type utterance struct {
	r      *Recognizer
	ctx    context.Context
	o      speech.StreamOptions
	pcm    []int16
	closed bool
}

func (u *utterance) Write(frame []int16) error {
	if u.closed {
		return speech.ErrClosed
	}
	if err := u.ctx.Err(); err != nil {
		return err
	}
	if err := speech.CheckFrame(frame, u.o.Rate); err != nil {
		return err
	}
	if len(u.pcm)+len(frame) > maxUtterance {
		return fmt.Errorf("%w: utterance longer than the 2 minutes a transcription request carries", speech.ErrUnsupported)
	}
	u.pcm = append(u.pcm, frame...)
	return nil
}

// Partial never has anything: the service sees the audio only at Finish.
func (u *utterance) Partial() (speech.Result, bool) { return speech.Result{}, false }

// verboseJSON is the response_format=verbose_json answer (the fields used).
type verboseJSON struct {
	Text     string  `json:"text"`
	Language string  `json:"language"`
	Duration float64 `json:"duration"`
	Segments []struct {
		Start        float64 `json:"start"`
		End          float64 `json:"end"`
		Text         string  `json:"text"`
		AvgLogprob   float64 `json:"avg_logprob"`
		NoSpeechProb float64 `json:"no_speech_prob"`
	} `json:"segments"`
	Words []struct {
		Word  string  `json:"word"`
		Start float64 `json:"start"`
		End   float64 `json:"end"`
	} `json:"words"`
}

func (u *utterance) Finish(ctx context.Context) (speech.Result, error) {
	if u.closed {
		return speech.Result{}, speech.ErrClosed
	}
	u.closed = true
	pcm := u.pcm
	u.pcm = nil
	if err := u.ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	// One context for the request: done when either is.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(u.ctx, cancel)
	defer stop()

	body, ctype, err := u.form(pcm)
	if err != nil {
		return speech.Result{}, err
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u.r.cfg.BaseURL+"/audio/transcriptions", body)
	if err != nil {
		return speech.Result{}, fmt.Errorf("%w: %v", speech.ErrEngine, err)
	}
	req.Header.Set("Content-Type", ctype)
	if u.r.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+u.r.cfg.APIKey)
	}
	resp, err := u.r.cfg.client().Do(req)
	if err != nil {
		if e := u.ctx.Err(); e != nil {
			return speech.Result{}, e
		}
		if e := ctx.Err(); e != nil {
			return speech.Result{}, e
		}
		return speech.Result{}, fmt.Errorf("%w: transcription request: %v", speech.ErrEngine, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return speech.Result{}, fmt.Errorf("%w: transcription answer: %v", speech.ErrEngine, err)
	}
	if resp.StatusCode != http.StatusOK {
		return speech.Result{}, fmt.Errorf("%w: transcription: HTTP %d: %s", speech.ErrEngine, resp.StatusCode, apiError(b))
	}
	var v verboseJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return speech.Result{}, fmt.Errorf("%w: transcription answer is not JSON: %v", speech.ErrEngine, err)
	}
	res := speech.Result{Final: true, Text: speech.NormalizeText(v.Text)}
	for _, w := range v.Words {
		t := speech.NormalizeText(w.Word)
		if t == "" {
			continue
		}
		res.Words = append(res.Words, speech.Word{Text: t,
			Start: time.Duration(w.Start * float64(time.Second)), End: time.Duration(w.End * float64(time.Second))})
	}
	// Confidence: the mean per-token probability of the segments, times
	// the probability that there was speech at all.
	if len(v.Segments) > 0 && res.Text != "" {
		var lp, ns float64
		for _, s := range v.Segments {
			lp += s.AvgLogprob
			ns += s.NoSpeechProb
		}
		n := float64(len(v.Segments))
		res.Confidence = math.Exp(lp/n) * (1 - ns/n)
		res.Confidence = max(0, min(1, res.Confidence))
	}
	if u.o.Grammar != nil {
		res.Tag = u.o.Grammar.Match(u.o.Lang, res.Text)
	}
	return res, nil
}

// form builds the multipart body.
func (u *utterance) form(pcm []int16) (io.Reader, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="utterance.wav"`)
	h.Set("Content-Type", "audio/wav")
	fw, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	fw.Write(wavBytes(pcm, u.o.Rate))
	fields := [][2]string{
		{"model", u.r.cfg.Model},
		{"response_format", "verbose_json"},
		{"timestamp_granularities[]", "word"},
		{"temperature", "0"},
	}
	if u.o.Lang != "" {
		fields = append(fields, [2]string{"language", u.o.Lang})
	}
	if g := u.o.Grammar; g != nil {
		var say []string
		for _, p := range g.Phrases {
			say = append(say, p.Say...)
		}
		if len(say) > 0 {
			fields = append(fields, [2]string{"prompt", strings.Join(say, ", ")})
		}
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return &buf, mw.FormDataContentType(), nil
}

// wavBytes is a canonical 44-byte-header 16-bit mono WAV.
func wavBytes(pcm []int16, rate int) []byte {
	b := make([]byte, 44+2*len(pcm))
	le32 := func(o int, v uint32) { b[o], b[o+1], b[o+2], b[o+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
	le16 := func(o int, v uint16) { b[o], b[o+1] = byte(v), byte(v>>8) }
	copy(b[0:], "RIFF")
	le32(4, uint32(36+2*len(pcm)))
	copy(b[8:], "WAVEfmt ")
	le32(16, 16)
	le16(20, 1)
	le16(22, 1)
	le32(24, uint32(rate))
	le32(28, uint32(2*rate))
	le16(32, 2)
	le16(34, 16)
	copy(b[36:], "data")
	le32(40, uint32(2*len(pcm)))
	for i, s := range pcm {
		le16(44+2*i, uint16(s))
	}
	return b
}

// apiError extracts {"error":{"message":...}} or returns the start of the
// body.
func apiError(b []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// pcmRate is the rate of response_format=pcm.
const pcmRate = 24000

// Synthesizer is the speech client. Safe for concurrent use.
type Synthesizer struct{ cfg Config }

var _ speech.Synthesizer = (*Synthesizer)(nil)

// NewSynthesizer returns a speech client for cfg.
func NewSynthesizer(cfg Config) (*Synthesizer, error) {
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, fmt.Errorf("openai: base URL %q is not http(s)", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Model == "" {
		cfg.Model = "tts-1"
	}
	return &Synthesizer{cfg: cfg}, nil
}

type speechRequest struct {
	Model          string  `json:"model"`
	Input          string  `json:"input"`
	Voice          string  `json:"voice"`
	ResponseFormat string  `json:"response_format"`
	Speed          float64 `json:"speed,omitempty"`
}

// Synthesize implements speech.Synthesizer: it returns once the server
// has answered with its headers; the audio streams after that. The
// request's Speed (words per minute) maps to the API's speed factor
// relative to 150 wpm.
func (s *Synthesizer) Synthesize(ctx context.Context, r speech.SynthRequest) (speech.Audio, error) {
	if err := speech.CheckRate(r.Rate); err != nil {
		return nil, err
	}
	if r.Lang != "ro" && r.Lang != "en" {
		return nil, fmt.Errorf("%w: language %q", speech.ErrUnsupported, r.Lang)
	}
	voice := r.Voice
	if voice == "" {
		voice = s.cfg.Voices[r.Lang]
	}
	if voice == "" {
		voice = "alloy"
	}
	sr := speechRequest{Model: s.cfg.Model, Input: r.Text, Voice: voice, ResponseFormat: "pcm"}
	if r.Speed > 0 {
		sr.Speed = max(0.25, min(4, float64(r.Speed)/150))
	}
	body, _ := json.Marshal(sr)
	// The request lives as long as the Audio: no client timeout on the
	// body, only on the wait for the headers.
	actx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.cfg.BaseURL+"/audio/speech", bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: %v", speech.ErrEngine, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.APIKey)
	}
	t := s.cfg.Timeout
	if t == 0 {
		t = 15 * time.Second
	}
	timer := time.AfterFunc(t, cancel)
	client := s.cfg.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		if e := ctx.Err(); e != nil {
			return nil, e
		}
		return nil, fmt.Errorf("%w: speech request: %v", speech.ErrEngine, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%w: speech: HTTP %d: %s", speech.ErrEngine, resp.StatusCode, apiError(b))
	}
	rs, err := audio.NewResampler(pcmRate, r.Rate)
	if err != nil {
		resp.Body.Close()
		cancel()
		return nil, err
	}
	src := &netAudio{ctx: ctx, cancel: cancel, body: resp.Body, raw: make([]byte, 4800), in: make([]int16, 2400)}
	a := &bodyAudio{BufferedAudio: speech.NewBufferedAudio(ctx, r.Rate, src), src: src}
	a.Buffer().Resample(rs, 240) // the tail pushes the filter's last samples out
	return a, nil
}

// bodyAudio is the Audio of a streamed speech body: the body is closed
// (and the request's context released) once reading ends, for any reason.
type bodyAudio struct {
	*speech.BufferedAudio
	src *netAudio
}

func (a *bodyAudio) ReadFrame(frame []int16) error {
	err := a.BufferedAudio.ReadFrame(frame)
	if err != nil && !a.src.bodyClosed {
		a.src.bodyClosed = true
		a.src.body.Close()
		a.src.cancel()
	}
	return err
}

// netAudio is the Source of a streamed PCM body (24 kHz, 16-bit little
// endian).
type netAudio struct {
	ctx    context.Context
	cancel context.CancelFunc
	body   io.ReadCloser

	mu     sync.Mutex // Close from another goroutine
	closed bool

	raw        []byte
	odd        []byte // a byte left over from an odd-sized read
	in         []int16
	bodyClosed bool // reader side
}

func (a *netAudio) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// Fill implements speech.Source: one read of the body.
func (a *netAudio) Fill(b *speech.FrameBuffer) error {
	m, err := a.body.Read(a.raw)
	if m > 0 {
		data := append(a.odd, a.raw[:m]...)
		a.odd = nil
		if len(data)%2 == 1 {
			a.odd = []byte{data[len(data)-1]}
			data = data[:len(data)-1]
		}
		in := a.in[:0]
		for i := 0; i+1 < len(data); i += 2 {
			in = append(in, int16(uint16(data[i])|uint16(data[i+1])<<8))
		}
		a.in = in
		b.Write(in)
	}
	if errors.Is(err, io.EOF) {
		b.End()
		return io.EOF
	} else if err != nil {
		if a.isClosed() {
			return speech.ErrClosed
		}
		if e := a.ctx.Err(); e != nil {
			return e
		}
		return fmt.Errorf("%w: speech stream: %v", speech.ErrEngine, err)
	}
	return nil
}

// Stop implements speech.Source: it aborts the request, which also stops
// a ReadFrame blocked on the network; the body is closed by the reader
// (Read and Close of a response body must not run concurrently) or,
// unread, by the aborted transport.
func (a *netAudio) Stop() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
}
