// Package speech holds the engine's speech interfaces: a streaming
// Recognizer (speech to text), a Synthesizer (text to speech) and a VAD
// (voice activity detection), plus the text normalisation helpers the flows
// use to have numbers read the way people read them (SpellDigits,
// NumberWords, DateWords).
//
// Engines live in subpackages: speech/espeak (espeak-ng synthesis, cgo),
// speech/sphinx (pocketsphinx grammar recognition, cgo), speech/silero
// (the silero VAD: one model shared by every call, through onnxruntime),
// speech/g2p (Romanian grapheme-to-phoneme rules for the sphinx lexicon),
// speech/vosk and speech/openai (network engines), speech/sherpa
// (sherpa-onnx models the operator supplies). speech/speechtest is the
// conformance kit every engine passes.
//
// Audio crosses these interfaces in the engine's internal form (see package
// audio): 16-bit linear PCM, mono, in frames of exactly
// audio.SamplesPerFrame(rate) samples (20 ms) at 8000 or 16000 Hz. A frame
// slice passed into an interface method belongs to the caller again as soon
// as the method returns: implementations copy what they keep. A frame slice
// filled by an implementation (Audio.ReadFrame) is the caller's.
package speech

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/govline/ivr/audio"
)

// Errors that callers classify with errors.Is.
var (
	// ErrClosed is returned by a stream or audio used after it ended.
	ErrClosed = errors.New("speech: stream closed")
	// ErrFrameSize wraps the error for a frame whose length is not
	// audio.SamplesPerFrame(rate).
	ErrFrameSize = errors.New("speech: wrong frame size")
	// ErrUnsupported wraps the error for a language, rate, voice or
	// grammar the engine cannot handle.
	ErrUnsupported = errors.New("speech: unsupported")
	// ErrEngine wraps failures inside an engine (a library error, a
	// network failure, a malformed answer from a server). The fallback
	// ladder moves to the next engine on it.
	ErrEngine = errors.New("speech: engine failure")
)

// Rates are the sample rates every engine accepts on its audio side.
var Rates = []int{8000, 16000}

// CheckRate returns an ErrUnsupported error unless rate is 8000 or 16000.
func CheckRate(rate int) error {
	if rate != 8000 && rate != 16000 {
		return fmt.Errorf("%w: sample rate %d Hz (want 8000 or 16000)", ErrUnsupported, rate)
	}
	return nil
}

// CheckFrame returns an ErrFrameSize error unless frame holds one 20 ms
// frame at rate.
func CheckFrame(frame []int16, rate int) error {
	if want := audio.SamplesPerFrame(rate); len(frame) != want {
		return fmt.Errorf("%w: %d samples, want %d (20 ms at %d Hz)", ErrFrameSize, len(frame), want, rate)
	}
	return nil
}

// Recognizer starts recognition streams, one per caller utterance.
//
// A Recognizer is safe for concurrent use: many calls open streams on one
// Recognizer at the same time. The context bounds the whole stream: once it
// is done, Write and Finish return its error promptly and the stream's
// resources are released.
type Recognizer interface {
	// NewStream starts recognizing one utterance. opts.Rate must be 8000
	// or 16000; opts.Grammar, when not nil, restricts what can be
	// recognized (engines without grammar support treat it as a hint and
	// fill Result.Tag by matching their text against it).
	NewStream(ctx context.Context, opts StreamOptions) (Stream, error)
}

// StreamOptions describe one utterance to recognize.
type StreamOptions struct {
	Lang    string   // "ro" or "en"
	Rate    int      // Hz of the frames written: 8000 or 16000
	Grammar *Grammar // nil: open vocabulary (when the engine has one)
	// Call names the call the utterance belongs to. Engines that adapt
	// to the line and the speaker (sphinx's cepstral mean) carry what
	// they learnt from one utterance to the next of the same call, and
	// never to another call. "" = no adaptation.
	Call string
}

// Stream recognizes one utterance. Frames go in with Write; the newest
// partial hypothesis is read with Partial; Finish ends the audio and
// returns the final result.
//
// Write and Finish are called from one goroutine (the call's media loop).
// Partial may be called from any goroutine at any time, also concurrently
// with Write. Write never waits for a network round trip: network engines
// send in the background and Write only fails once the connection did.
// Every stream must end with Finish (with a done context to abandon it).
type Stream interface {
	// Write feeds the next 20 ms frame. It does not keep frame after it
	// returns. After Finish it returns ErrClosed.
	Write(frame []int16) error
	// Partial returns the newest partial result (Final false) and whether
	// it changed since the previous call to Partial.
	Partial() (r Result, changed bool)
	// Finish marks the end of the audio, waits for the final result (at
	// most until ctx is done) and releases the stream. A result with empty
	// Text means nothing in the grammar (or nothing at all) was heard.
	// Calling it again returns ErrClosed.
	Finish(ctx context.Context) (Result, error)
}

// ConfirmBelow is the confidence under which a spoken answer is more
// likely wrong than a flow should act on unconfirmed: flows confirm such
// an answer ("I understood: passport. Is that right?") and the agent
// console marks it unsure. The embedded recognizer's confidence is
// calibrated so that this threshold means that (docs/speech.md has the
// accuracy above and below it).
const ConfirmBelow = 0.5

// Result is a recognition hypothesis.
type Result struct {
	Text string // words recognized, lower case, separated by one space
	// Tag is the Phrase.Tag of the grammar phrase Text matched ("" when
	// there was no grammar or no match).
	Tag string
	// Confidence is in 0..1 (an engine's own score mapped there; 0 when
	// the engine has none).
	Confidence float64
	Words      []Word // per-word timing, when the engine has it
	// Alternatives are the next-best hypotheses, best first (not
	// including Text itself).
	Alternatives []Alternative
	Final        bool
}

// Word is one recognized word and its time from the start of the stream.
type Word struct {
	Text       string
	Start, End time.Duration
	Confidence float64 // 0..1, 0 when unknown
}

// Alternative is a less likely hypothesis.
type Alternative struct {
	Text       string
	Tag        string
	Confidence float64
}

// Synthesizer turns text into audio.
//
// A Synthesizer is safe for concurrent use. Synthesize returns as soon as
// the engine can start producing audio; the frames come out of the returned
// Audio while the rest of the text is still being rendered, so a long
// answer starts playing after the first few milliseconds of work.
type Synthesizer interface {
	// Synthesize starts rendering req. When ctx is done rendering stops
	// and ReadFrame returns ctx's error.
	Synthesize(ctx context.Context, req SynthRequest) (Audio, error)
}

// SynthRequest is one text to speak.
type SynthRequest struct {
	Text  string
	Lang  string // "ro" or "en"
	Voice string // engine-specific voice variant ("" = default), e.g. "m3", "f2" for espeak-ng
	Speed int    // words per minute, 0 = engine default
	Rate  int    // Hz of the frames produced: 8000 or 16000
}

// Audio is rendered speech, read one 20 ms frame at a time.
//
// ReadFrame and Close are called from one goroutine, except that Close may
// also be called from another goroutine to stop a ReadFrame that waits
// (barge-in).
type Audio interface {
	// ReadFrame fills frame (exactly audio.SamplesPerFrame(rate) samples,
	// owned by the caller) with the next frame, waiting for the engine if
	// it is not rendered yet. The last frame is padded with silence. At
	// the end it returns io.EOF; after Close, ErrClosed.
	ReadFrame(frame []int16) error
	// Close stops rendering and releases the audio. It is idempotent.
	Close() error
}

// VAD detects speech in a stream of frames. One VAD serves one audio
// stream (one call direction): it is not safe for concurrent use, and its
// state follows the audio it was fed.
type VAD interface {
	// Process feeds the next 20 ms frame (not kept after return) and says
	// whether speech is present, with the start and end events.
	Process(frame []int16) (Activity, error)
	// Reset forgets the audio seen so far (a new turn).
	Reset()
}

// Activity is a VAD's verdict on one frame.
type Activity struct {
	// Probability of speech in this frame, 0..1 (engines without a
	// probability report 0 or 1).
	Probability float64
	// Speech is true while the VAD is inside a speech segment (after its
	// start event, before its end event, with the engine's hangover).
	Speech bool
	// Event marks the frame where a segment started or ended.
	Event VADEvent
}

// VADEvent marks a transition of a VAD.
type VADEvent int

// VAD events.
const (
	NoEvent     VADEvent = iota
	SpeechStart          // the first frame of a segment (the engine may confirm it a little late)
	SpeechEnd            // the first frame after a segment
)

func (e VADEvent) String() string {
	switch e {
	case SpeechStart:
		return "speech-start"
	case SpeechEnd:
		return "speech-end"
	}
	return "none"
}

// ReadAll reads a until its end and closes it: the whole rendered speech
// at rate (the rate it was synthesized at).
func ReadAll(a Audio, rate int) ([]int16, error) {
	defer a.Close()
	frame := make([]int16, audio.SamplesPerFrame(rate))
	var out []int16
	for {
		if err := a.ReadFrame(frame); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, frame...)
	}
}
