package ivr

import (
	"math"

	"github.com/govline/ivr/audio"
)

// endpointer decides, frame by frame, where the caller's utterances start
// and end. It is pure: no clock (time is counted in 20 ms frames), no
// goroutine, no engine. The ear feeds it every caller frame with the
// voice activity detector's decision; it answers with an epEvent.
//
// A frame counts as speech when the VAD says so and it is loud: above an
// adaptive noise estimate by the margin, and above an absolute floor. An
// utterance starts when such speech lasts bargeIn frames (short dips
// allowed); it is handed out from the pre-roll on, so nothing of its
// start is clipped. It ends after endSilence frames without speech, or at
// maxUtt frames.
type endpointer struct {
	bargeIn int     // frames of sustained speech that start an utterance
	maxUtt  int     // frames an utterance may last
	margin  float64 // dB above the noise estimate that count as loud

	n         int     // frames seen
	floor     float64 // noise estimate, dB of RMS in 16-bit units
	vadSpeech bool    // the VAD said speech on the last frame it ran
	runStart  int     // first frame of the current loud run, -1 when none
	lastLoud  int
	preroll   [][]int16
	inUtt     bool
	silent    int // frames without speech inside the utterance
	uttLen    int // frames of the utterance, pre-roll included
}

// epEvent is what a frame means for the caller's turn.
type epEvent int

const (
	epNone  epEvent = iota // outside an utterance
	epStart                // an utterance starts: frames holds the pre-roll, this frame last
	epFrame                // a frame inside the utterance
	epEnd                  // the utterance ended with this frame (included)
)

func (e epEvent) String() string {
	return [...]string{"none", "start", "frame", "end"}[e]
}

const (
	prerollLen = 25 // frames (500 ms) kept before speech is confirmed
	// absFloor is the lowest level (dB of RMS in 16-bit units, about
	// -50 dBFS) that can count as speech, whatever the noise estimate.
	absFloor = 40.0
	// dipFrames is how long the level may dip inside a word without
	// restarting the sustained-speech count.
	dipFrames = 3
	// floorStart is the noise estimate of a new call (dB).
	floorStart = 30.0
)

func newEndpointer(bargeInFrames, maxUttFrames int, margin float64) *endpointer {
	return &endpointer{bargeIn: max(1, bargeInFrames), maxUtt: max(1, maxUttFrames), margin: margin, floor: floorStart, runStart: -1}
}

func levelDB(f []int16) float64 { return 20 * math.Log10(audio.RMS(f)+1) }

// loud reports whether f is loud enough to be speech, and whether the VAD
// must hear it: a loud frame, and every frame while the VAD is inside a
// segment or an utterance goes on (a quiet line costs no VAD at all).
func (p *endpointer) loud(f []int16) (loud, needVAD bool) {
	loud = levelDB(f) >= max(p.floor+p.margin, absFloor)
	return loud, loud || p.vadSpeech || p.inUtt
}

// push takes one frame with its loudness (from loud) and the VAD's
// decision (false when the VAD did not run), and the silence that ends
// this turn (in frames). frames is the pre-roll at epStart, f itself at
// epFrame and epEnd, nil at epNone. The slices are f itself or frames
// pushed earlier: push keeps no frame after handing it out.
func (p *endpointer) push(f []int16, loud, speech bool, endSilence int) (ev epEvent, frames [][]int16) {
	p.n++
	p.vadSpeech = speech
	if !speech {
		// The noise estimate follows the level outside speech: fast
		// down, slow up (a second of steady noise).
		db := levelDB(f)
		a := 0.02
		if db < p.floor {
			a = 0.2
		}
		p.floor += a * (db - p.floor)
	}
	if loud {
		if p.runStart < 0 {
			p.runStart = p.n
		}
		p.lastLoud = p.n
	} else if p.runStart >= 0 && p.n-p.lastLoud > dipFrames {
		p.runStart = -1
	}
	if !p.inUtt {
		p.preroll = append(p.preroll, f)
		if len(p.preroll) > prerollLen {
			p.preroll = p.preroll[1:]
		}
		sustained := p.runStart >= 0 && p.n-p.runStart+1 >= p.bargeIn
		if !speech || !sustained {
			return epNone, nil
		}
		p.inUtt, p.silent = true, 0
		frames, p.preroll = p.preroll, nil
		p.uttLen = len(frames)
		return epStart, frames
	}
	p.uttLen++
	if speech && loud {
		p.silent = 0
	} else {
		p.silent++
	}
	if p.silent >= max(1, endSilence) || p.uttLen >= p.maxUtt {
		p.inUtt, p.runStart = false, -1
		return epEnd, [][]int16{f}
	}
	return epFrame, [][]int16{f}
}
