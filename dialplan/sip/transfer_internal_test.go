package sip

import (
	"math"
	"testing"

	"github.com/govline/ivr/audio"
)

// BenchmarkBridgeFrame is the engine's work for 20 ms of a bridged call in
// both directions: one agent payload decoded into a caller frame, one
// caller frame encoded into an agent payload (the RTP I/O not counted).
func BenchmarkBridgeFrame(b *testing.B) {
	for _, tc := range []struct {
		codec string
		rate  int
	}{{"PCMU", 8000}, {"opus", 16000}} {
		b.Run(tc.codec, func(b *testing.B) {
			x, err := newTranscoder(tc.codec, tc.rate)
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]int16, audio.SamplesPerFrame(tc.rate))
			for i := range frame {
				frame[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(tc.rate)))
			}
			// An agent payload of the same codec.
			enc, _ := audio.NewEncoderAt(tc.codec, tc.rate)
			pcm := make([]int16, enc.Rate()/50)
			rs, _ := audio.NewResampler(tc.rate, enc.Rate())
			buf := make([]byte, audio.MaxPayloadSize)
			n, err := enc.Encode(buf, pcm[:rs.Process(pcm, frame)])
			if err != nil {
				b.Fatal(err)
			}
			payload := buf[:n]
			frames := 0
			emit := func([]int16) error { frames++; return nil }
			b.ReportAllocs()
			for b.Loop() {
				if err := x.toCaller(payload, emit); err != nil {
					b.Fatal(err)
				}
				if _, err := x.toAgent(frame); err != nil {
					b.Fatal(err)
				}
			}
			if frames == 0 {
				b.Fatal("no caller frame came out")
			}
		})
	}
}

func TestHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"  a\r\nInjected: 1 ": "a  Injected: 1",
		"pierdută":            "pierdută",
	} {
		if got := headerValue(in, 200); got != want {
			t.Errorf("headerValue(%q) = %q, want %q", in, got, want)
		}
	}
	if got := headerValue("ăăă", 5); got != "ăă" {
		t.Errorf("cut mid-rune: %q", got)
	}
}
