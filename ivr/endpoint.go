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

	n     int     // frames seen
	floor float64 // noise estimate, dB of RMS in 16-bit units
	bg    levelHistory
	// onset holds the levels of the last frames outside utterances until
	// they are known not to be the start of one (then they go to bg; an
	// utterance's first frames never do).
	onset     []float64
	vadSpeech bool // the VAD said speech on the last frame it ran
	runStart  int  // first frame of the current loud run, -1 when none
	lastLoud  int
	preroll   [][]int16
	inUtt     bool
	silent    int // frames without speech inside the utterance
	uttLen    int // frames of the utterance, pre-roll included
	voiced    int // frames of speech in the utterance (the sustained start included)
	// bright and energy sum, over the utterance's loud frames, the energy
	// of the signal's first difference and of the signal: their ratio
	// (brightness) is near 0 for a closed-mouth hum, far above for words.
	bright, energy float64
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
	loud = levelDB(f) >= p.threshold()
	return loud, loud || p.vadSpeech || p.inUtt
}

// threshold is the level (dB) a frame needs to count as the caller's
// speech: the margin above the noise estimate, above the median level of
// the line outside the caller's utterances, and bgPeakMargin above that
// level's 90th percentile (a voice in the room: its loud syllables).
func (p *endpointer) threshold() float64 {
	room := min(max(p.bg.median+p.margin, p.bg.p90+bgPeakMargin), bgCeiling)
	return max(p.floor+p.margin, room, absFloor)
}

// bgCeiling bounds what the room's level may ask of the caller: 64 dB
// (about -26 dBFS, 6 dB under the nominal level of telephone speech). A
// frame that loud is the caller's whatever the room learnt, so a caller
// who talks from the first moment of the call without pausing (and whom
// the room's level learnt) is still heard.
const bgCeiling = 64.0

// bgPeakMargin is how much louder than the loud syllables of a voice in
// the room (the 90th percentile of the line's level outside the caller's
// utterances) the caller must be. Measured on the speech test set's
// television at 15 dB below the caller: its 90th percentile is 9 dB over
// its median and its loudest frame 3.5 dB over that.
const bgPeakMargin = 4.0

// overVoices reports whether other voices sound in the caller's room (a
// television, a radio, people talking): the loud syllables of the line's
// level outside the caller's utterances (its 90th percentile) stand
// roomVoiceMargin above the noise estimate, which only follows the level
// where the VAD hears no speech. Steady noise (a street, a fan) raises
// both alike. Measured over SIP on the speech test set's sounds at 15 dB
// under the caller: a television 16.5 dB, street noise 7.8 dB, a quiet
// line below 0.
func (p *endpointer) overVoices() bool {
	return p.bg.n >= bgMin && p.bg.p90 >= p.floor+roomVoiceMargin
}

// roomVoiceMargin: see overVoices.
const roomVoiceMargin = 12.0

// levelHistory is the level of the line outside the caller's utterances
// over the last bgFrames frames (3 s), kept as a histogram of whole dB,
// and its median. The noise estimate (floor) follows the level only where
// the VAD hears no speech; a television or a radio in the room is speech
// to the VAD, so it never raises that estimate, but it raises this median:
// the caller must be louder than the room's own voices to be heard.
type levelHistory struct {
	ring   [bgFrames]uint8
	n      int // frames recorded
	hist   [maxDB + 1]uint16
	median float64 // 0 until bgMin frames are recorded
	p90    float64 // the 90th percentile, likewise
}

// The median counts from bgMin frames on, and no utterance starts before
// that: the first 300 ms of the call teach the endpointer the room, so a
// television on from the start is learnt before it can barge in, and a
// caller's "alo?" over the answer is not taken for an answer.
const (
	bgFrames = 150 // 3 s
	bgMin    = 15  // 300 ms
	maxDB    = 100
)

func (h *levelHistory) add(db float64) {
	b := uint8(max(0, min(maxDB, int(db))))
	i := h.n % bgFrames
	if h.n >= bgFrames {
		h.hist[h.ring[i]]--
	}
	h.ring[i] = b
	h.hist[b]++
	h.n++
	if h.n < bgMin || (h.n > bgMin && h.n%5 != 0) {
		return
	}
	n, seen := min(h.n, bgFrames), 0
	h.median, h.p90 = -1, -1
	for db, c := range h.hist {
		seen += int(c)
		if h.median < 0 && seen > n/2 {
			h.median = float64(db)
		}
		if seen > n*9/10 {
			h.p90 = float64(db)
			return
		}
	}
}

// push takes one frame with its loudness (from loud) and the VAD's
// decision (false when the VAD did not run), and the silence that ends
// this turn (in frames). frames is the pre-roll at epStart, f itself at
// epFrame and epEnd, nil at epNone. The slices are f itself or frames
// pushed earlier: push keeps no frame after handing it out.
// onsetAge is how many frames ago the loud run that started the current
// utterance began (0: at the frame just pushed).
func (p *endpointer) onsetAge() int {
	if p.runStart < 0 {
		return 0
	}
	return p.n - p.runStart
}

// sustained reports whether, outside an utterance, the current loud run
// has lasted bargeIn frames (what starts an utterance once the VAD agrees).
func (p *endpointer) sustained() bool {
	return !p.inUtt && p.runStart >= 0 && p.n-p.runStart+1 >= p.bargeIn
}

func (p *endpointer) push(f []int16, loud, speech bool, endSilence int) (ev epEvent, frames [][]int16) {
	p.n++
	p.vadSpeech = speech
	db := levelDB(f)
	switch {
	case p.inUtt:
	case p.bg.n < bgMin: // learning: no utterance can start yet
		p.bg.add(db)
	default:
		p.onset = append(p.onset, db)
		if len(p.onset) > p.bargeIn+dipFrames {
			p.bg.add(p.onset[0])
			p.onset = p.onset[1:]
		}
	}
	if !speech {
		// The noise estimate follows the level outside speech: fast
		// down, slow up (a second of steady noise).
		a := 0.02
		if db < p.floor {
			a = 0.2
		}
		p.floor += a * (db - p.floor)
	}
	switch {
	case p.bg.n < bgMin: // learning the room: no run counts yet
	case loud:
		if p.runStart < 0 {
			p.runStart = p.n
		}
		p.lastLoud = p.n
	case p.runStart >= 0 && p.n-p.lastLoud > dipFrames:
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
		p.inUtt, p.silent, p.voiced = true, 0, p.bargeIn
		p.onset = p.onset[:0] // the utterance's start: not the room's level
		frames, p.preroll = p.preroll, nil
		p.bright, p.energy = 0, 0
		for _, fr := range frames[max(0, len(frames)-p.bargeIn):] {
			p.addBrightness(fr)
		}
		p.uttLen = len(frames)
		return epStart, frames
	}
	p.uttLen++
	if speech && loud {
		p.silent = 0
		p.voiced++
		p.addBrightness(f)
	} else {
		p.silent++
	}
	if p.silent >= max(1, endSilence) || p.uttLen >= p.maxUtt {
		p.inUtt, p.runStart = false, -1
		return epEnd, [][]int16{f}
	}
	return epFrame, [][]int16{f}
}

// addBrightness adds a frame of the utterance to its brightness sums.
func (p *endpointer) addBrightness(f []int16) {
	prev := float64(f[0])
	for _, v := range f {
		x := float64(v)
		p.bright += (x - prev) * (x - prev)
		p.energy += x * x
		prev = x
	}
}

// brightness is the utterance's high-frequency share: the energy of the
// signal's first difference over the signal's (0 to 4). Measured on 8 kHz
// telephone audio: a closed-mouth "hmm" 0.03; the darkest words, nasal
// and back vowels ("nu"), 0.13; most words 0.3 to 0.7.
func (p *endpointer) brightness() float64 {
	if p.energy == 0 {
		return 0
	}
	return p.bright / p.energy
}

// humBrightness is the brightness under which a short sound is a hum, not
// a word (between the 0.03 of a "hmm" and the 0.13 of "nu").
const humBrightness = 0.07
