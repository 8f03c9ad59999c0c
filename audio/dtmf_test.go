package audio

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// dtmfTone is key k as two sines of amplitude rowAmp and colAmp.
func dtmfTone(rate int, k rune, rowAmp, colAmp float64, dur float64) []int16 {
	var fr, fc float64
	for r := range 4 {
		for c := range 4 {
			if dtmfKeys[r][c] == k {
				fr, fc = dtmfRows[r], dtmfCols[c]
			}
		}
	}
	n := int(dur * float64(rate))
	out := make([]int16, n)
	for i := range out {
		t := float64(i) / float64(rate)
		out[i] = int16(rowAmp*math.Sin(2*math.Pi*fr*t) + colAmp*math.Sin(2*math.Pi*fc*t+0.3))
	}
	return out
}

// feedAll runs pcm through a detector frame by frame and returns the keys.
func feedAll(d *DTMFDetector, rate int, pcm []int16) string {
	n := SamplesPerFrame(rate)
	var keys []rune
	for off := 0; off+n <= len(pcm); off += n {
		if k := d.Feed(pcm[off : off+n]); k != 0 {
			keys = append(keys, k)
		}
	}
	return string(keys)
}

func silence(rate int, dur float64) []int16 { return make([]int16, int(dur*float64(rate))) }

// throughPCMU sends pcm through PCMU and back, as a phone line does.
func throughPCMU(t *testing.T, pcm []int16) []int16 {
	enc, dec := mustEncoder(t, "PCMU"), mustDecoder(t, "PCMU")
	pay := make([]byte, MaxPayloadSize)
	out := make([]int16, 0, len(pcm))
	buf := make([]int16, 160)
	for off := 0; off+160 <= len(pcm); off += 160 {
		n, err := enc.Encode(pay, pcm[off:off+160])
		if err != nil {
			t.Fatal(err)
		}
		m, err := dec.Decode(buf, pay[:n])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, buf[:m]...)
	}
	return out
}

func TestDTMFDetectorEveryKey(t *testing.T) {
	const all = "123A456B789C*0#D"
	for _, rate := range []int{8000, 16000} {
		var pcm []int16
		for _, k := range all {
			// 70 ms tones with 60 ms pauses, not aligned to frames.
			pcm = append(pcm, silence(rate, 0.013)...)
			pcm = append(pcm, dtmfTone(rate, k, 6000, 6000, 0.07)...)
			pcm = append(pcm, silence(rate, 0.047)...)
		}
		if rate == 8000 {
			pcm = throughPCMU(t, pcm)
		}
		if got := feedAll(NewDTMFDetector(rate), rate, pcm); got != all {
			t.Errorf("%d Hz: detected %q, want %q", rate, got, all)
		}
	}
}

func TestDTMFDetectorLevelsTwistNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name           string
		row, col       float64
		noise          float64
		want           string
		dur, pauseSecs float64
	}{
		{"quiet -25 dBFS", 1800, 1800, 0, "5", 0.1, 0.1},
		{"normal twist 3 dB", 8000, 5700, 0, "5", 0.1, 0.1},
		{"reverse twist 6 dB", 4000, 8000, 0, "5", 0.1, 0.1},
		{"noise 20 dB below", 6000, 6000, 850, "5", 0.1, 0.1},
		{"twist 10 dB is not DTMF", 8000, 2500, 0, "", 0.1, 0.1},
		{"25 ms is too short", 6000, 6000, 0, "", 0.025, 0.1},
		{"too quiet", 150, 150, 0, "", 0.1, 0.1},
	}
	for _, c := range cases {
		pcm := append(silence(8000, 0.05), dtmfTone(8000, '5', c.row, c.col, c.dur)...)
		pcm = append(pcm, silence(8000, c.pauseSecs)...)
		for i := range pcm {
			pcm[i] += int16(rng.NormFloat64() * c.noise)
		}
		if got := feedAll(NewDTMFDetector(8000), 8000, throughPCMU(t, pcm)); got != c.want {
			t.Errorf("%s: detected %q, want %q", c.name, got, c.want)
		}
	}
	// One long press is one key; the same key after a pause is another.
	pcm := append(dtmfTone(8000, '7', 6000, 6000, 0.5), silence(8000, 0.06)...)
	pcm = append(pcm, dtmfTone(8000, '7', 6000, 6000, 0.1)...)
	if got := feedAll(NewDTMFDetector(8000), 8000, pcm); got != "77" {
		t.Errorf("long press then short press: %q, want 77", got)
	}
}

// Talk-off: speech must not be taken for keys. The prompts rendered for
// the line (Romanian speech, through G.711) give no key at all.
func TestDTMFDetectorIgnoresSpeech(t *testing.T) {
	dir := filepath.Join("..", "flows", "prompts", "ro")
	texts, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(texts) == 0 {
		t.Fatalf("no prompt texts in %s", dir)
	}
	speech := renderSpeech(t, texts)
	if got := feedAll(NewDTMFDetector(8000), 8000, throughPCMU(t, speech)); got != "" {
		t.Errorf("speech (%d s) taken for keys %q", len(speech)/8000, got)
	}
}

// renderSpeech speaks the texts with espeak-ng (as the engine renders its
// prompts) and returns 8 kHz PCM.
func renderSpeech(t *testing.T, texts []string) []int16 {
	t.Helper()
	var out []int16
	tmp := t.TempDir()
	for i, txt := range texts {
		b, err := os.ReadFile(txt)
		if err != nil {
			t.Fatal(err)
		}
		wav := filepath.Join(tmp, "s.wav")
		if err := speak(string(b), wav); err != nil {
			t.Fatalf("espeak-ng (make test installs it): %v", err)
		}
		pcm, err := LoadWAVFile(wav, 8000)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pcm...)
		_ = i
	}
	return out
}

func BenchmarkDTMFDetector(b *testing.B) {
	d := NewDTMFDetector(8000)
	frame := dtmfTone(8000, '5', 6000, 6000, 0.02)
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(frame)
	}
}

func speak(text, wav string) error {
	cmd := exec.Command("espeak-ng", "-v", "ro", "-s", "150", "-w", wav, text)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}
