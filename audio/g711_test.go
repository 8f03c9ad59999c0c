package audio

import (
	"testing"

	"github.com/zaf/g711"
)

// Values worked by hand from the ITU-T G.711 tables (G.191 g711.c).
func TestG711KnownVectors(t *testing.T) {
	ulaw := map[byte]int16{0x00: -32124, 0x80: 32124, 0xFF: 0, 0x7F: 0, 0x7E: -8, 0xFE: 8, 0x0F: -16764, 0x70: -120, 0xF0: 120, 0xEF: 132}
	for code, want := range ulaw {
		if got := UlawToLinear(code); got != want {
			t.Errorf("UlawToLinear(%#02x) = %d, want %d", code, got, want)
		}
	}
	alaw := map[byte]int16{0xD5: 8, 0x55: -8, 0xAA: 32256, 0x2A: -32256, 0xD4: 24, 0x80: 5504, 0x00: -5504, 0xC5: 264}
	for code, want := range alaw {
		if got := AlawToLinear(code); got != want {
			t.Errorf("AlawToLinear(%#02x) = %d, want %d", code, got, want)
		}
	}
	enc := []struct {
		in       int16
		ulaw, al byte
	}{
		{0, 0xFF, 0xD5}, {-1, 0x7F, 0x55}, {32767, 0x80, 0xAA}, {-32768, 0x00, 0x2A},
		{8, 0xFE, 0xD5}, {-8, 0x7E, 0x55}, {100, 0xF2, 0xD3}, {1000, 0xCE, 0xFA}, {-1000, 0x4E, 0x7A},
	}
	for _, c := range enc {
		if got := LinearToUlaw(c.in); got != c.ulaw {
			t.Errorf("LinearToUlaw(%d) = %#02x, want %#02x", c.in, got, c.ulaw)
		}
		if got := LinearToAlaw(c.in); got != c.al {
			t.Errorf("LinearToAlaw(%d) = %#02x, want %#02x", c.in, got, c.al)
		}
	}
}

func TestG711RoundTripAllCodes(t *testing.T) {
	for c := 0; c < 256; c++ {
		code := byte(c)
		if code != 0x7F { // µ-law 0x7F is "negative zero", it re-encodes as 0xFF
			if got := LinearToUlaw(UlawToLinear(code)); got != code {
				t.Errorf("µ-law %#02x -> %d -> %#02x", code, UlawToLinear(code), got)
			}
		}
		if got := LinearToAlaw(AlawToLinear(code)); got != code {
			t.Errorf("A-law %#02x -> %d -> %#02x", code, AlawToLinear(code), got)
		}
	}
}

// The encoder must agree with an independent implementation on every
// 16-bit input, and quantization must be monotonic.
func TestG711MatchesReferenceAllInputs(t *testing.T) {
	var mismU, mismA int
	prevU, prevA := int16(-32768), int16(-32768)
	for i := -32768; i <= 32767; i++ {
		s := int16(i)
		u, a := LinearToUlaw(s), LinearToAlaw(s)
		if ref := g711.EncodeUlawFrame(s); u != ref {
			if mismU++; mismU < 5 {
				t.Errorf("LinearToUlaw(%d) = %#02x, zaf/g711 says %#02x", s, u, ref)
			}
		}
		if ref := g711.EncodeAlawFrame(s); a != ref {
			if mismA++; mismA < 5 {
				t.Errorf("LinearToAlaw(%d) = %#02x, zaf/g711 says %#02x", s, a, ref)
			}
		}
		du, da := UlawToLinear(u), AlawToLinear(a)
		if du < prevU || da < prevA {
			t.Fatalf("quantization not monotonic at %d: µ %d after %d, A %d after %d", s, du, prevU, da, prevA)
		}
		prevU, prevA = du, da
	}
	for c := 0; c < 256; c++ {
		if UlawToLinear(byte(c)) != g711.DecodeUlawFrame(byte(c)) || AlawToLinear(byte(c)) != g711.DecodeAlawFrame(byte(c)) {
			t.Errorf("decode of %#02x differs from zaf/g711", c)
		}
	}
}

func TestG711Conceal(t *testing.T) {
	dec, err := NewDecoder("PCMU")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, 160)
	// No history: silence.
	if n, err := dec.Decode(out, nil); err != nil || n != 160 || RMS(out) != 0 {
		t.Fatalf("conceal without history: n=%d err=%v rms=%v", n, err, RMS(out))
	}
	enc, _ := NewEncoder("PCMU")
	pay := make([]byte, 160)
	enc.Encode(pay, tone(8000, 440, 10000, 0, 160))
	dec.Decode(out, pay)
	full := RMS(out)
	var levels []float64
	for range 4 {
		if n, err := dec.Decode(out, nil); err != nil || n != 160 {
			t.Fatalf("conceal: n=%d err=%v", n, err)
		}
		levels = append(levels, RMS(out))
	}
	if !(levels[0] > 0.5*full && levels[0] < full && levels[1] > 0 && levels[1] < levels[0] && levels[2] == 0 && levels[3] == 0) {
		t.Errorf("concealment levels %v (frame before: %.0f): want fading repetition then silence", levels, full)
	}
	// A good frame after losses is decoded exactly.
	dec.Decode(out, pay)
	if RMS(out) != full {
		t.Errorf("decode after loss: rms %.0f want %.0f", RMS(out), full)
	}
}
