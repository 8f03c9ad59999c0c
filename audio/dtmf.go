package audio

import "math"

// dtmfRows and dtmfCols are the DTMF frequencies (ITU-T Q.23).
var (
	dtmfRows = [4]float64{697, 770, 852, 941}
	dtmfCols = [4]float64{1209, 1336, 1477, 1633}
	dtmfKeys = [4][4]rune{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
)

// Detection thresholds. A frame holds a key when its strongest row and
// column tones carry most of the frame's energy (speech spreads its energy
// over many frequencies), are each 8 dB above the other tones of their
// group, are loud enough, and are within the twist a telephone may have
// (column tone up to 4 dB weaker or 8 dB stronger than the row tone,
// Q.24). A key is reported after two frames (40 ms) and once per press.
const (
	dtmfMinToneEnergy = 300 * 300 // per-sample energy of each tone: a sine of amplitude 424, about -38 dBFS
	dtmfTonesShare    = 0.75      // the two tones' share of the frame's energy
	dtmfGroupMargin   = 6.3       // 8 dB: the chosen tone over the others of its group
	dtmfMaxTwist      = 2.5       // 4 dB: column weaker than row (normal twist)
	dtmfMaxRevTwist   = 6.3       // 8 dB: column stronger than row (reverse twist)
	dtmfMinFrames     = 2         // 40 ms
)

// DTMFDetector finds DTMF key presses in the tones of an audio stream (the
// "in-band" DTMF of analog lines and gateways that do not send RFC 4733
// events). It runs the Goertzel algorithm at the eight DTMF frequencies
// on each 20 ms frame. Not safe for concurrent use; no allocation per
// frame.
type DTMFDetector struct {
	rate    int
	coeff   [8]float64
	current rune // key seen in the previous frames, 0 for none
	frames  int  // consecutive frames with current
	sent    bool // current was reported
}

// NewDTMFDetector returns a detector for mono PCM at rate (8000 or more).
func NewDTMFDetector(rate int) *DTMFDetector {
	d := &DTMFDetector{rate: rate}
	for i, f := range append(dtmfRows[:], dtmfCols[:]...) {
		d.coeff[i] = 2 * math.Cos(2*math.Pi*f/float64(rate))
	}
	return d
}

// Feed takes the next frame (20 ms) and returns the key of a press that
// has just lasted long enough, or 0.
func (d *DTMFDetector) Feed(frame []int16) rune {
	key := d.frameKey(frame)
	if key == 0 || key != d.current {
		d.current, d.frames, d.sent = key, 0, false
		if key == 0 {
			return 0
		}
	}
	d.frames++
	if d.frames >= dtmfMinFrames && !d.sent {
		d.sent = true
		return key
	}
	return 0
}

// frameKey returns the key whose two tones dominate frame, or 0.
func (d *DTMFDetector) frameKey(frame []int16) rune {
	n := len(frame)
	if n == 0 {
		return 0
	}
	var energy float64
	for _, s := range frame {
		x := float64(s)
		energy += x * x
	}
	if energy < 2*dtmfMinToneEnergy*float64(n) {
		return 0
	}
	// The eight Goertzel recurrences in one pass over the frame: eight
	// independent chains keep the CPU busy (3x faster than one at a time).
	c0, c1, c2, c3, c4, c5, c6, c7 := d.coeff[0], d.coeff[1], d.coeff[2], d.coeff[3], d.coeff[4], d.coeff[5], d.coeff[6], d.coeff[7]
	var a0, a1, a2, a3, a4, a5, a6, a7 float64 // s[n-1]
	var b0, b1, b2, b3, b4, b5, b6, b7 float64 // s[n-2]
	for _, v := range frame {
		x := float64(v)
		a0, b0 = x+c0*a0-b0, a0
		a1, b1 = x+c1*a1-b1, a1
		a2, b2 = x+c2*a2-b2, a2
		a3, b3 = x+c3*a3-b3, a3
		a4, b4 = x+c4*a4-b4, a4
		a5, b5 = x+c5*a5-b5, a5
		a6, b6 = x+c6*a6-b6, a6
		a7, b7 = x+c7*a7-b7, a7
	}
	// |X|^2 scaled so that a sine's value equals its energy over the
	// frame: 2|X|^2/N.
	k := 2 / float64(n)
	p := [8]float64{
		k * (a0*a0 + b0*b0 - c0*a0*b0), k * (a1*a1 + b1*b1 - c1*a1*b1),
		k * (a2*a2 + b2*b2 - c2*a2*b2), k * (a3*a3 + b3*b3 - c3*a3*b3),
		k * (a4*a4 + b4*b4 - c4*a4*b4), k * (a5*a5 + b5*b5 - c5*a5*b5),
		k * (a6*a6 + b6*b6 - c6*a6*b6), k * (a7*a7 + b7*b7 - c7*a7*b7),
	}
	r, rp, rn := strongest(p[:4])
	c, cp, cn := strongest(p[4:])
	if rp < dtmfMinToneEnergy*float64(n) || cp < dtmfMinToneEnergy*float64(n) {
		return 0
	}
	if rp < dtmfGroupMargin*rn || cp < dtmfGroupMargin*cn {
		return 0
	}
	if cp*dtmfMaxTwist < rp || cp > rp*dtmfMaxRevTwist {
		return 0
	}
	if rp+cp < dtmfTonesShare*energy {
		return 0
	}
	return dtmfKeys[r][c]
}

// strongest returns the index and value of the largest of p and the
// largest of the others.
func strongest(p []float64) (idx int, top, next float64) {
	for i, v := range p {
		if v > top {
			idx, next, top = i, top, v
		} else if v > next {
			next = v
		}
	}
	return idx, top, next
}
