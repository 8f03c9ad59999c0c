// Package amd is answering machine detection on an answered outbound
// call, whatever the telephony (docs/operations.md, "Answering
// machines"; docs/queue.md, "Call me back"): once the call is answered
// the line says nothing yet and listens to the first seconds of what the
// far end sends. A person answers with a short word ("Alo?", "Da?") and
// waits; a voicemail plays a long greeting without a pause, then a beep.
//
//   - speech that goes on for Speech (machine_speech) without a pause of
//     Pause (machine_pause), and is speech for at least half of that
//     time, is a machine: the adapter hangs up without a word and the
//     attempt ends as "machine";
//   - speech followed by Pause of silence is a person: the flow starts
//     at once (a person who said "Alo" hears the line about Pause after
//     their word);
//   - Silence (machine_silence) of silence from the answer is a person
//     who waits for the line to speak: the flow starts;
//   - nothing decided after Max (machine_max; a noisy line): a person.
//     Hanging up on a citizen who asked to be called costs more than the
//     rare machine that then hears the flow's first sentence.
//
// Nothing is ever left on a voicemail: a message, even without a name,
// would tell whoever hears the mailbox that its owner has a request with
// a public service.
//
// A frame counts as speech when it is loud (above an absolute floor of
// about -50 dBFS and 10 dB above the line's noise: Level) and, when the
// engine has a voice activity detector (ivr.SpeechConfig.NewVAD: the
// shared silero model), when the detector hears speech in it; a line
// without the detector decides on loudness alone (a continuous tone then
// counts as a greeting).
//
// The package knows nothing of SIP, ARI or the event socket: an adapter
// (dialplan/sip, dialplan/ari, dialplan/esl) calls Detect on the
// answered call's audio and acts on the Result.
package amd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// Defaults of Config.
const (
	DefaultSpeech  = 2500 * time.Millisecond
	DefaultPause   = 800 * time.Millisecond
	DefaultSilence = 2 * time.Second
	DefaultMax     = 5 * time.Second
)

// Config tunes answering machine detection on answered outbound calls;
// the zero value of a duration means its default.
type Config struct {
	Enabled bool
	Speech  time.Duration // a greeting this long without a pause is a machine (2.5 s)
	Pause   time.Duration // silence after speech that ends a person's greeting (800 ms)
	Silence time.Duration // silence from the answer: a person waiting (2 s)
	Max     time.Duration // the longest the line listens before it speaks (5 s)
}

// WithDefaults returns m with every zero duration set to its default.
func (m Config) WithDefaults() Config {
	if m.Speech <= 0 {
		m.Speech = DefaultSpeech
	}
	if m.Pause <= 0 {
		m.Pause = DefaultPause
	}
	if m.Silence <= 0 {
		m.Silence = DefaultSilence
	}
	if m.Max <= 0 {
		m.Max = DefaultMax
	}
	return m
}

// Verdict is what the detector made of the answer so far.
type Verdict int

const (
	Listening Verdict = iota // not decided yet
	Human
	Machine
)

func (v Verdict) String() string {
	return [...]string{"listening", "human", "machine"}[v]
}

// Detector decides from one frame's speech decision at a time. It is
// pure: time is counted in 20 ms frames. Not safe for concurrent use.
type Detector struct {
	speech, pause, silence, max int // thresholds in frames

	n      int // frames seen
	start  int // frame of the greeting's first speech, -1 before
	last   int // frame of the latest speech
	quiet  int // frames without speech since the latest speech
	voiced int // frames of speech in the greeting
	why    string
}

// NewDetector returns a detector tuned by m (its zero durations are the
// defaults).
func NewDetector(m Config) *Detector {
	m = m.WithDefaults()
	f := func(d time.Duration) int { return max(1, int(d/FrameDuration)) }
	return &Detector{speech: f(m.Speech), pause: f(m.Pause), silence: f(m.Silence), max: f(m.Max), start: -1}
}

// FrameDuration is the time one Push stands for.
const FrameDuration = 20 * time.Millisecond

// Frames is the duration of n frames.
func Frames(n int) time.Duration { return time.Duration(n) * FrameDuration }

// Push takes one frame's speech decision and returns the verdict; once
// decided, Why says why.
func (d *Detector) Push(speech bool) Verdict {
	d.n++
	if speech {
		if d.start < 0 {
			d.start = d.n
		}
		d.last, d.quiet = d.n, 0
		d.voiced++
		// A greeting is mostly speech: clicks or crackle spread over the
		// seconds are not one.
		if ext := d.n - d.start + 1; ext >= d.speech && 2*d.voiced >= ext {
			d.why = fmt.Sprintf("a greeting of %s (%s of it speech) without a pause of %s", Frames(ext), Frames(d.voiced), Frames(d.pause))
			return Machine
		}
	} else if d.start >= 0 {
		d.quiet++
		if d.quiet >= d.pause {
			d.why = fmt.Sprintf("a greeting of %s, then %s of silence", Frames(d.last-d.start+1), Frames(d.quiet))
			return Human
		}
	} else if d.n >= d.silence {
		d.why = fmt.Sprintf("silence for %s", Frames(d.n))
		return Human
	}
	if d.n >= d.max {
		d.why = fmt.Sprintf("undecided after %s (%s of speech)", Frames(d.n), Frames(d.voiced))
		return Human
	}
	return Listening
}

// Why is the reason of the verdict, once decided.
func (d *Detector) Why() string { return d.why }

// Level tells a loud frame from the line's noise: above FloorDB and
// MarginDB above a noise estimate that follows the quiet frames. The zero
// value is not ready: use NewLevel.
type Level struct{ noise float64 }

const (
	FloorDB  = 40.0 // dB of RMS in 16-bit units, about -50 dBFS
	MarginDB = 10.0
	NoiseDB  = 30.0 // the noise estimate of a new call
)

// NewLevel is the loudness gate of a new call.
func NewLevel() *Level { return &Level{noise: NoiseDB} }

// Loud says whether f is loud, and follows the noise with the quiet frames.
func (l *Level) Loud(f []int16) bool {
	db := 20 * math.Log10(audio.RMS(f)+1)
	if db >= max(FloorDB, l.noise+MarginDB) {
		return true
	}
	l.noise += 0.05 * (db - l.noise)
	return false
}

// Result is the detection on one answered call.
type Result struct {
	Verdict Verdict
	Why     string
	Took    time.Duration // from the start of listening to the verdict
}

// String is the detail of the call's amd event:
// "machine: a greeting of 2.5s ...; decided 2.61 s after the answer".
func (r Result) String() string {
	return fmt.Sprintf("%s: %s; decided %.2f s after the answer", r.Verdict, r.Why, r.Took.Seconds())
}

// FrameReader is the answered call's audio (ivr.Media's ReadFrame):
// ReadFrame blocks until the far end's next 20 ms of 16-bit PCM at the
// call's rate and copies it into dst; it returns ctx's error when ctx
// ends first, or the call's end cause. Detect calls it from one goroutine.
type FrameReader interface {
	ReadFrame(ctx context.Context, dst []int16) (int, error)
}

// NewVAD gives a voice activity detector for one call's audio at rate
// and the function that gives it back (ivr.SpeechConfig.NewVAD).
type NewVAD func(rate int) (speech.VAD, func(), error)

// errNoAudio is a read that waited past Gap for the far end's audio.
var errNoAudio = errors.New("no audio")

// Gap is how long a read waits for a frame: a far end that sends nothing
// (silence suppression) counts as silent frames.
const Gap = 100 * time.Millisecond

// Detect listens to r from now on and decides whether a person or a
// machine answered; newVAD may be nil (loudness alone decides), log may
// be nil. It returns an error only when ctx (the call's context) ended
// meanwhile (the citizen hung up): its cause.
func Detect(ctx context.Context, r FrameReader, rate int, m Config, newVAD NewVAD, log *slog.Logger) (Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	det := NewDetector(m)
	var vad speech.VAD
	if newVAD != nil {
		v, release, err := newVAD(rate)
		if err != nil {
			log.Warn("answering machine detection: no voice activity detector, loudness alone decides", "err", err)
		} else {
			vad = v
			defer release()
		}
	}
	lvl := NewLevel()
	frame := make([]int16, audio.SamplesPerFrame(rate))
	silent := make([]int16, len(frame))
	last := time.Now()
	for {
		rctx, cancel := context.WithTimeoutCause(ctx, Gap, errNoAudio)
		_, err := r.ReadFrame(rctx, frame)
		cancel()
		var v Verdict
		switch {
		case err == nil:
			last = time.Now()
			loud := lvl.Loud(frame)
			sp := loud
			if vad != nil {
				act, verr := vad.Process(frame)
				if verr != nil {
					log.Warn("answering machine detection: the voice activity detector failed, loudness alone decides", "err", verr)
					vad = nil
				} else {
					sp = loud && act.Speech
				}
			}
			v = det.Push(sp)
		case ctx.Err() != nil:
			return Result{}, context.Cause(ctx)
		default: // no frame: the gap counts as silence
			gap := int(time.Since(last) / FrameDuration)
			last = last.Add(Frames(gap))
			v = Listening
			for range max(gap, 1) {
				if v = det.Push(false); v != Listening {
					break
				}
				if vad != nil {
					_, _ = vad.Process(silent)
				}
			}
		}
		if v != Listening {
			return Result{Verdict: v, Why: det.Why(), Took: time.Since(began)}, nil
		}
	}
}
