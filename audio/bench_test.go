package audio

import (
	"path/filepath"
	"testing"
)

func benchEncode(b *testing.B, name string) {
	enc := mustEncoder(b, name)
	pcm := tone(enc.Rate(), 440, 8000, 0, SamplesPerFrame(enc.Rate()))
	dst := make([]byte, MaxPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(dst, pcm); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecode(b *testing.B, name string) {
	enc, dec := mustEncoder(b, name), mustDecoder(b, name)
	spf := SamplesPerFrame(enc.Rate())
	pay := make([]byte, MaxPayloadSize)
	n, _ := enc.Encode(pay, tone(enc.Rate(), 440, 8000, 0, spf))
	dst := make([]int16, spf)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(dst, pay[:n]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePCMU(b *testing.B) { benchEncode(b, "PCMU") }
func BenchmarkDecodePCMU(b *testing.B) { benchDecode(b, "PCMU") }
func BenchmarkEncodePCMA(b *testing.B) { benchEncode(b, "PCMA") }
func BenchmarkDecodePCMA(b *testing.B) { benchDecode(b, "PCMA") }
func BenchmarkEncodeOpus(b *testing.B) { benchEncode(b, "opus") }
func BenchmarkDecodeOpus(b *testing.B) { benchDecode(b, "opus") }

func benchResample(b *testing.B, from, to int) {
	r, err := NewResampler(from, to)
	if err != nil {
		b.Fatal(err)
	}
	src := tone(from, 440, 8000, 0, SamplesPerFrame(from))
	dst := make([]int16, SamplesPerFrame(to))
	b.ReportAllocs()
	for b.Loop() {
		r.Process(dst, src)
	}
}

func BenchmarkResample8to16(b *testing.B)  { benchResample(b, 8000, 16000) }
func BenchmarkResample48to16(b *testing.B) { benchResample(b, 48000, 16000) }
func BenchmarkResample48to8(b *testing.B)  { benchResample(b, 48000, 8000) }
func BenchmarkResample8to48(b *testing.B)  { benchResample(b, 8000, 48000) }

// One op: push a packet (every 10th swapped with its successor) and pop
// what is ready.
func BenchmarkJitterBuffer(b *testing.B) {
	j := NewJitterBuffer(4)
	pay := make([]byte, 160)
	seq := uint16(0)
	b.ReportAllocs()
	for b.Loop() {
		s := seq
		switch seq % 10 {
		case 3:
			s = seq + 1
		case 4:
			s = seq - 1
		}
		j.Push(s, uint32(s)*160, 1, pay)
		for {
			if _, _, ok := j.Pop(); !ok {
				break
			}
		}
		seq++
	}
}

// One op: one 20 ms frame from each side at 8 kHz.
func BenchmarkRecorderFrame(b *testing.B) {
	r, err := NewRecorder(filepath.Join(b.TempDir(), "bench.wav"), 8000)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	frame := tone(8000, 440, 8000, 0, 160)
	b.ReportAllocs()
	for b.Loop() {
		r.WriteCaller(frame)
		r.WriteEngine(frame)
	}
}

func BenchmarkEncodeOpus16k(b *testing.B) {
	enc, err := NewEncoderAt("opus", 16000)
	if err != nil {
		b.Fatal(err)
	}
	pcm := tone(16000, 440, 8000, 0, 320)
	dst := make([]byte, MaxPayloadSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(dst, pcm); err != nil {
			b.Fatal(err)
		}
	}
}
