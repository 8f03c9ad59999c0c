package audio

import (
	"fmt"
	"math/bits"
)

// G.711 as in ITU-T G.711 (and the reference g711.c of Sun Microsystems):
// decoding by 256-entry tables, encoding by segment arithmetic.

const g711Rate = 8000

var (
	ulawToLinear = func() (t [256]int16) {
		for i := range t {
			t[i] = ulawDecode(byte(i))
		}
		return t
	}()
	alawToLinear = func() (t [256]int16) {
		for i := range t {
			t[i] = alawDecode(byte(i))
		}
		return t
	}()
)

func ulawDecode(u byte) int16 {
	const bias = 0x84
	u = ^u
	t := (int(u&0x0F) << 3) + bias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(bias - t)
	}
	return int16(t - bias)
}

func alawDecode(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// LinearToUlaw encodes one 16-bit sample as G.711 µ-law, exactly as the
// ITU-T G.191 reference (ulaw_compress): the sample is taken as 14 bits,
// negative values by one's complement.
func LinearToUlaw(s int16) byte {
	mag := int(s) >> 2
	sign := byte(0x80)
	if s < 0 {
		mag = int(^s) >> 2
		sign = 0
	}
	mag += 33 // the µ-law bias, in 14-bit units
	if mag > 0x1FFF {
		mag = 0x1FFF
	}
	e := bits.Len(uint(mag >> 6)) // exponent 0..7
	low := 0x0F - byte(mag>>(e+1))&0x0F
	return sign | byte(7-e)<<4 | low
}

// LinearToAlaw encodes one 16-bit sample as G.711 A-law, exactly as the
// ITU-T G.191 reference (alaw_compress).
func LinearToAlaw(s int16) byte {
	v := int(s) >> 3
	mask := byte(0xD5)
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	seg := bits.Len(uint(v)) - 5
	if seg < 0 {
		seg = 0
	}
	if seg >= 8 {
		return 0x7F ^ mask
	}
	a := byte(seg << 4)
	if seg < 2 {
		a |= byte(v>>1) & 0x0F
	} else {
		a |= byte(v>>seg) & 0x0F
	}
	return a ^ mask
}

// UlawToLinear decodes one G.711 µ-law byte.
func UlawToLinear(u byte) int16 { return ulawToLinear[u] }

// AlawToLinear decodes one G.711 A-law byte.
func AlawToLinear(a byte) int16 { return alawToLinear[a] }

type ulawEncoder struct{}

var _ Encoder = (*ulawEncoder)(nil)

func (*ulawEncoder) Rate() int { return g711Rate }

func (*ulawEncoder) Encode(dst []byte, pcm []int16) (int, error) {
	if len(dst) < len(pcm) {
		return 0, fmt.Errorf("audio: PCMU encode: dst has %d bytes, need %d", len(dst), len(pcm))
	}
	dst = dst[:len(pcm)]
	for i, s := range pcm {
		dst[i] = LinearToUlaw(s)
	}
	return len(pcm), nil
}

func (*ulawEncoder) String() string { return "PCMU/8000 encoder" }

type alawEncoder struct{}

var _ Encoder = (*alawEncoder)(nil)

func (*alawEncoder) Rate() int { return g711Rate }

func (*alawEncoder) Encode(dst []byte, pcm []int16) (int, error) {
	if len(dst) < len(pcm) {
		return 0, fmt.Errorf("audio: PCMA encode: dst has %d bytes, need %d", len(dst), len(pcm))
	}
	dst = dst[:len(pcm)]
	for i, s := range pcm {
		dst[i] = LinearToAlaw(s)
	}
	return len(pcm), nil
}

func (*alawEncoder) String() string { return "PCMA/8000 encoder" }

// g711Decoder decodes either law; it keeps the last frame to conceal losses:
// the first lost frame repeats it fading from full to half level, the second
// fades from half to silence, later ones are silence.
type g711Decoder struct {
	table  *[256]int16
	name   string
	last   [g711Rate / framesPerSecond]int16
	nlast  int
	misses int
}

var _ Decoder = (*g711Decoder)(nil)

func (d *g711Decoder) Rate() int { return g711Rate }

func (d *g711Decoder) String() string { return d.name + "/8000 decoder" }

func (d *g711Decoder) Decode(dst []int16, payload []byte) (int, error) {
	if len(payload) == 0 {
		return d.conceal(dst)
	}
	if len(dst) < len(payload) {
		return 0, fmt.Errorf("audio: %s decode: dst has room for %d samples, payload has %d", d.name, len(dst), len(payload))
	}
	dst = dst[:len(payload)]
	for i, b := range payload {
		dst[i] = d.table[b]
	}
	d.misses = 0
	d.nlast = copy(d.last[:], dst[max(0, len(dst)-len(d.last)):])
	return len(payload), nil
}

func (d *g711Decoder) conceal(dst []int16) (int, error) {
	n := len(d.last)
	if len(dst) < n {
		return 0, fmt.Errorf("audio: %s conceal: dst has room for %d samples, need %d", d.name, len(dst), n)
	}
	dst = dst[:n]
	d.misses++
	if d.misses > 2 || d.nlast == 0 {
		clear(dst)
		return n, nil
	}
	// Gain in 1/65536: fades linearly from g0 to g1 over the frame.
	g0 := int32(65536) >> (d.misses - 1)
	g1 := g0 / 2
	if d.misses == 2 {
		g1 = 0
	}
	for i := range dst {
		src := d.last[(i%d.nlast)+len(d.last)-d.nlast]
		g := g0 + (g1-g0)*int32(i)/int32(n)
		dst[i] = int16((int32(src) * g) >> 16)
	}
	return n, nil
}
