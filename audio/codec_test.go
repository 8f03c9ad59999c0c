package audio

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCodecNames(t *testing.T) {
	for _, c := range []struct {
		name string
		rate int
	}{{"PCMU", 8000}, {"pcmu", 8000}, {"PCMA", 8000}, {"Pcma", 8000}, {"opus", 48000}, {"OPUS", 48000}} {
		enc, err := NewEncoder(c.name)
		if err != nil {
			t.Fatalf("NewEncoder(%q): %v", c.name, err)
		}
		dec, err := NewDecoder(c.name)
		if err != nil {
			t.Fatalf("NewDecoder(%q): %v", c.name, err)
		}
		if enc.Rate() != c.rate || dec.Rate() != c.rate {
			t.Errorf("%s: rates %d/%d, want %d", c.name, enc.Rate(), dec.Rate(), c.rate)
		}
	}
	for _, bad := range []string{"G729", "", "telephone-event"} {
		_, err := NewEncoder(bad)
		if !errors.Is(err, ErrUnknownCodec) || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("NewEncoder(%q) error %v: want ErrUnknownCodec naming it", bad, err)
		}
		_, err = NewDecoder(bad)
		if !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("NewDecoder(%q) error %v: want ErrUnknownCodec", bad, err)
		}
	}
	if _, ok := mustDecoder(t, "opus").(FECDecoder); !ok {
		t.Error("opus decoder does not implement FECDecoder")
	}
}

func mustEncoder(t testing.TB, name string) Encoder {
	e, err := NewEncoder(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustDecoder(t testing.TB, name string) Decoder {
	d, err := NewDecoder(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// transcode sends frames of a 440 Hz tone through the codec and returns
// input and output.
func transcode(t *testing.T, name string, frames int) (in, out []int16) {
	enc, dec := mustEncoder(t, name), mustDecoder(t, name)
	rate := enc.Rate()
	spf := SamplesPerFrame(rate)
	pay := make([]byte, MaxPayloadSize)
	pcm := make([]int16, spf)
	for f := range frames {
		frame := tone(rate, 440, 12000, f*spf, spf)
		n, err := enc.Encode(pay, frame)
		if err != nil {
			t.Fatalf("%s encode frame %d: %v", name, f, err)
		}
		m, err := dec.Decode(pcm, pay[:n])
		if err != nil || m != spf {
			t.Fatalf("%s decode frame %d: n=%d err=%v", name, f, m, err)
		}
		in = append(in, frame...)
		out = append(out, pcm[:m]...)
	}
	return in, out
}

func TestG711ToneSNR(t *testing.T) {
	for _, name := range []string{"PCMU", "PCMA"} {
		in, out := transcode(t, name, 50)
		if snr := snrDB(t, in, out); snr < 30 {
			t.Errorf("%s: SNR of a 440 Hz tone %.1f dB, want > 30", name, snr)
		} else {
			t.Logf("%s: SNR %.1f dB", name, snr)
		}
		enc := mustEncoder(t, name)
		if _, err := enc.Encode(make([]byte, 10), make([]int16, 160)); err == nil {
			t.Errorf("%s: encode into a short dst: no error", name)
		}
	}
}

func TestOpusTone(t *testing.T) {
	in, out := transcode(t, "opus", 100) // 2 s
	// Opus delays the signal (look-ahead); find the delay by
	// cross-correlation, then compare from 200 ms on (encoder warm-up).
	skip := 9600
	best, bestLag := math.Inf(-1), 0
	for lag := 0; lag < 960; lag++ {
		var c float64
		for i := skip; i < skip+4800; i++ {
			c += float64(in[i]) * float64(out[i+lag])
		}
		if c > best {
			best, bestLag = c, lag
		}
	}
	a, b := in[skip:len(in)-960], out[skip+bestLag:len(out)-960+bestLag]
	snr := snrDB(t, a, b)
	ratio := RMS(b) / RMS(a)
	t.Logf("opus: delay %d samples, SNR %.1f dB, level ratio %.3f", bestLag, snr, ratio)
	if snr < 15 {
		t.Errorf("opus: SNR %.1f dB after aligning by %d samples, want > 15", snr, bestLag)
	}
	if ratio < 0.8 || ratio > 1.25 {
		t.Errorf("opus: level ratio %.3f, want about 1", ratio)
	}
}

func TestOpusConcealAndFEC(t *testing.T) {
	enc, d := mustEncoder(t, "opus"), mustDecoder(t, "opus")
	dec := d.(FECDecoder)
	pay := make([]byte, MaxPayloadSize)
	pcm := make([]int16, 960)
	var pays [][]byte
	for f := range 20 {
		n, err := enc.Encode(pay, tone(48000, 440, 12000, f*960, 960))
		if err != nil {
			t.Fatal(err)
		}
		pays = append(pays, append([]byte(nil), pay[:n]...))
	}
	for f := range 10 {
		if _, err := dec.Decode(pcm, pays[f]); err != nil {
			t.Fatal(err)
		}
	}
	n, err := dec.Decode(pcm, nil) // frame 10 lost: PLC
	if err != nil || n != 960 {
		t.Fatalf("opus PLC: n=%d err=%v", n, err)
	}
	if RMS(pcm) < 1000 {
		t.Errorf("opus PLC of a steady tone: rms %.0f, want the tone continued", RMS(pcm))
	}
	// Frame 11 lost, frame 12 arrived: recover 11 from 12's FEC.
	n, err = dec.DecodeFEC(pcm, pays[12])
	if err != nil || n != 960 {
		t.Fatalf("opus FEC: n=%d err=%v", n, err)
	}
	if RMS(pcm) < 1000 {
		t.Errorf("opus FEC: rms %.0f, want the tone", RMS(pcm))
	}
	if _, err := dec.Decode(make([]int16, 100), nil); err == nil {
		t.Error("opus PLC into a 100-sample dst: no error")
	}
	if _, err := enc.Encode(pay, make([]int16, 160)); err == nil || !strings.Contains(err.Error(), "160") {
		t.Errorf("opus encode of 160 samples: err %v, want one naming the size", err)
	}
}

func FuzzDecode(f *testing.F) {
	enc := mustEncoder(f, "opus")
	pay := make([]byte, MaxPayloadSize)
	n, _ := enc.Encode(pay, tone(48000, 440, 8000, 0, 960))
	f.Add(uint8(2), pay[:n])
	f.Add(uint8(0), []byte{0xFF, 0x7F, 0x00})
	f.Add(uint8(2), []byte{0xFC, 0xFF, 0xFF})
	f.Add(uint8(2), []byte{})
	decs := map[uint8]Decoder{0: mustDecoder(f, "PCMU"), 1: mustDecoder(f, "PCMA"), 2: mustDecoder(f, "opus")}
	dst := make([]int16, 5760)
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		dec := decs[which%3]
		n, err := dec.Decode(dst[:dec.Rate()/50*6], payload)
		if err == nil && (n < 0 || n > dec.Rate()/50*6) {
			t.Fatalf("%v: n=%d", dec, n)
		}
		if which%3 < 2 && len(payload) <= 960 && err != nil {
			t.Fatalf("G.711 decode of %d bytes: %v", len(payload), err)
		}
		// Concealment after anything must work.
		if _, err := dec.Decode(dst, nil); err != nil {
			t.Fatalf("%v: conceal: %v", dec, err)
		}
	})
}

// Opus at 16 kHz (what a wideband call uses) round-trips a tone without a
// resampler, and G.711 ignores the rate it is asked for.
func TestCodecsAtCallRate(t *testing.T) {
	enc, err := NewEncoderAt("opus", 16000)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoderAt("OPUS", 16000)
	if err != nil {
		t.Fatal(err)
	}
	if enc.Rate() != 16000 || dec.Rate() != 16000 {
		t.Fatalf("rates %d/%d, want 16000", enc.Rate(), dec.Rate())
	}
	pay := make([]byte, MaxPayloadSize)
	out := make([]int16, 320)
	var in, got []int16
	for f := range 100 {
		frame := tone(16000, 440, 8000, f*320, 320)
		n, err := enc.Encode(pay, frame)
		if err != nil {
			t.Fatal(err)
		}
		m, err := dec.Decode(out, pay[:n])
		if err != nil || m != 320 {
			t.Fatalf("decode: %d samples, %v", m, err)
		}
		in = append(in, frame...)
		got = append(got, out[:m]...)
	}
	// Compare levels after the encoder's warm-up; the look-ahead delay
	// does not change the level of a steady tone.
	if r := RMS(got[3200:]) / RMS(in[3200:]); r < 0.8 || r > 1.25 {
		t.Errorf("opus at 16 kHz: level ratio %.3f, want about 1", r)
	}
	g, err := NewEncoderAt("PCMA", 16000)
	if err != nil || g.Rate() != 8000 {
		t.Errorf("PCMA at 16 kHz: rate %v, err %v; want 8000", g.Rate(), err)
	}
	if _, err := NewDecoderAt("G729", 8000); err == nil {
		t.Error("unknown codec accepted")
	}
}
