package sip

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// Answering machine detection (docs/operations.md, "Outbound calls";
// docs/queue.md, "Call me back"): once an outbound call is answered the
// line says nothing yet and listens to the first seconds of what the far
// end sends. A person answers with a short word ("Alo?", "Da?") and waits;
// a voicemail plays a long greeting without a pause, then a beep.
//
//   - speech that goes on for Speech (sip.outbound.machine_speech)
//     without a pause of Pause (machine_pause), and is speech for at
//     least half of that time, is a machine: the line hangs up without
//     a word and the attempt ends as "machine" (retried like a busy
//     number);
//   - speech followed by Pause of silence is a person: the flow starts
//     at once (a person who said "Alo" hears the line about Pause after
//     their word);
//   - Silence (machine_silence) of silence from the answer is a person
//     who waits for the line to speak: the flow starts;
//   - nothing decided after Max (machine_max; a noisy line): a person.
//     Hanging up on a citizen who asked to be called costs more than
//     the rare machine that then hears the flow's first sentence.
//
// Nothing is ever left on a voicemail: a message, even without a name,
// would tell whoever hears the mailbox that its owner has a request with
// a public service.
//
// A frame counts as speech when it is loud (above an absolute floor of
// about -50 dBFS and 10 dB above the line's noise) and, when the engine
// has a voice activity detector (ivr.SpeechConfig.NewVAD: the shared
// silero model), when the detector hears speech in it; a line without the
// detector decides on loudness alone (a continuous tone then counts as a
// greeting).

// Defaults of MachineDetection.
const (
	DefaultMachineSpeech  = 2500 * time.Millisecond
	DefaultMachinePause   = 800 * time.Millisecond
	DefaultMachineSilence = 2 * time.Second
	DefaultMachineMax     = 5 * time.Second
)

// MachineDetection tunes answering machine detection on answered outbound
// calls; the zero value of a duration means its default.
type MachineDetection struct {
	Enabled bool
	Speech  time.Duration // a greeting this long without a pause is a machine (2.5 s)
	Pause   time.Duration // silence after speech that ends a person's greeting (800 ms)
	Silence time.Duration // silence from the answer: a person waiting (2 s)
	Max     time.Duration // the longest the line listens before it speaks (5 s)
}

func (m MachineDetection) withDefaults() MachineDetection {
	if m.Speech <= 0 {
		m.Speech = DefaultMachineSpeech
	}
	if m.Pause <= 0 {
		m.Pause = DefaultMachinePause
	}
	if m.Silence <= 0 {
		m.Silence = DefaultMachineSilence
	}
	if m.Max <= 0 {
		m.Max = DefaultMachineMax
	}
	return m
}

// amdVerdict is what the detector made of the answer so far.
type amdVerdict int

const (
	amdListening amdVerdict = iota
	amdHuman
	amdMachine
)

func (v amdVerdict) String() string {
	return [...]string{"listening", "human", "machine"}[v]
}

// amdDetector decides from one frame's speech decision at a time. It is
// pure: time is counted in 20 ms frames.
type amdDetector struct {
	speech, pause, silence, max int // thresholds in frames

	n      int // frames seen
	start  int // frame of the greeting's first speech, -1 before
	last   int // frame of the latest speech
	quiet  int // frames without speech since the latest speech
	voiced int // frames of speech in the greeting
	why    string
}

func newAMDDetector(m MachineDetection) *amdDetector {
	m = m.withDefaults()
	f := func(d time.Duration) int { return max(1, int(d/frameDuration)) }
	return &amdDetector{speech: f(m.Speech), pause: f(m.Pause), silence: f(m.Silence), max: f(m.Max), start: -1}
}

const frameDuration = 20 * time.Millisecond

func frames(n int) time.Duration { return time.Duration(n) * frameDuration }

// push takes one frame's speech decision and returns the verdict, with
// the reason in why once decided.
func (d *amdDetector) push(speech bool) amdVerdict {
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
			d.why = fmt.Sprintf("a greeting of %s (%s of it speech) without a pause of %s", frames(ext), frames(d.voiced), frames(d.pause))
			return amdMachine
		}
	} else if d.start >= 0 {
		d.quiet++
		if d.quiet >= d.pause {
			d.why = fmt.Sprintf("a greeting of %s, then %s of silence", frames(d.last-d.start+1), frames(d.quiet))
			return amdHuman
		}
	} else if d.n >= d.silence {
		d.why = fmt.Sprintf("silence for %s", frames(d.n))
		return amdHuman
	}
	if d.n >= d.max {
		d.why = fmt.Sprintf("undecided after %s (%s of speech)", frames(d.n), frames(d.voiced))
		return amdHuman
	}
	return amdListening
}

// amdLevel tells a loud frame from the line's noise: above absFloorDB and
// noiseMarginDB above a noise estimate that follows the quiet frames.
type amdLevel struct{ noise float64 }

const (
	amdFloorDB  = 40.0 // dB of RMS in 16-bit units, about -50 dBFS
	amdMarginDB = 10.0
	amdNoiseDB  = 30.0 // the noise estimate of a new call
)

func (l *amdLevel) loud(f []int16) bool {
	db := 20 * math.Log10(audio.RMS(f)+1)
	if db >= max(amdFloorDB, l.noise+amdMarginDB) {
		return true
	}
	l.noise += 0.05 * (db - l.noise)
	return false
}

// amdResult is the detection on one answered call.
type amdResult struct {
	Verdict amdVerdict
	Why     string
	Took    time.Duration // from the start of listening to the verdict
}

// errNoAudio is a read that waited past amdGap for the far end's audio.
var errNoAudio = errors.New("no audio")

// amdGap is how long a read waits for a frame: a far end that sends
// nothing (silence suppression) counts as silent frames.
const amdGap = 100 * time.Millisecond

// detectMachine listens to c from now on and decides whether a person or
// a machine answered. It returns an error only when the call ended
// meanwhile (the citizen hung up).
func (s *Server) detectMachine(c *call, m MachineDetection) (amdResult, error) {
	began := time.Now()
	det := newAMDDetector(m)
	var vad speech.VAD
	if sc := s.eng.Speech; sc != nil && sc.NewVAD != nil {
		v, release, err := sc.NewVAD(c.rate)
		if err != nil {
			c.tr.Log().Warn("answering machine detection: no voice activity detector, loudness alone decides", "err", err)
		} else {
			vad = v
			defer release()
		}
	}
	var lvl = amdLevel{noise: amdNoiseDB}
	frame := make([]int16, audio.SamplesPerFrame(c.rate))
	silent := make([]int16, len(frame))
	last := time.Now()
	for {
		rctx, cancel := context.WithTimeoutCause(c.ctx, amdGap, errNoAudio)
		_, err := c.ReadFrame(rctx, frame)
		cancel()
		var v amdVerdict
		switch {
		case err == nil:
			last = time.Now()
			loud := lvl.loud(frame)
			sp := loud
			if vad != nil {
				act, verr := vad.Process(frame)
				if verr != nil {
					c.tr.Log().Warn("answering machine detection: the voice activity detector failed, loudness alone decides", "err", verr)
					vad = nil
				} else {
					sp = loud && act.Speech
				}
			}
			v = det.push(sp)
		case c.ctx.Err() != nil:
			return amdResult{}, context.Cause(c.ctx)
		default: // no frame: the gap counts as silence
			gap := int(time.Since(last) / frameDuration)
			last = last.Add(frames(gap))
			v = amdListening
			for range max(gap, 1) {
				if v = det.push(false); v != amdListening {
					break
				}
				if vad != nil {
					_, _ = vad.Process(silent)
				}
			}
		}
		if v != amdListening {
			return amdResult{Verdict: v, Why: det.why, Took: time.Since(began)}, nil
		}
	}
}
