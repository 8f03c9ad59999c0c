package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// memFile is an in-memory io.WriteSeeker / io.ReadSeeker.
type memFile struct {
	b   []byte
	pos int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := m.pos + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	n := copy(m.b[m.pos:], p)
	m.pos += int64(n)
	return n, nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += m.pos
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	m.pos = off
	return off, nil
}

func wavBytes(t testing.TB, pcm []int16, rate, ch int) []byte {
	t.Helper()
	var m memFile
	if err := WriteWAV(&m, pcm, rate, ch); err != nil {
		t.Fatal(err)
	}
	return m.b
}

func TestWAVRoundTrip(t *testing.T) {
	pcm := tone(16000, 440, 20000, 0, 16000)
	pcm[0], pcm[1] = -32768, 32767
	b := wavBytes(t, pcm, 16000, 1)
	if len(b) != 44+2*len(pcm) || string(b[36:40]) != "data" {
		t.Fatalf("file is %d bytes (want canonical 44-byte header + data)", len(b))
	}
	got, rate, err := ReadWAV(bytes.NewReader(b))
	if err != nil || rate != 16000 {
		t.Fatalf("ReadWAV: rate %d, %v", rate, err)
	}
	if !slicesEqual(got, pcm) {
		t.Fatal("samples differ after the round trip")
	}
	// Stereo is mixed down.
	st := []int16{1000, 3000, -100, -300, 32767, 32767, -32768, -32768}
	got, _, err = ReadWAV(bytes.NewReader(wavBytes(t, st, 8000, 2)))
	if err != nil || !slicesEqual(got, []int16{2000, -200, 32767, -32768}) {
		t.Fatalf("stereo downmix: %v %v", got, err)
	}
	// Empty file with a valid header.
	got, _, err = ReadWAV(bytes.NewReader(wavBytes(t, nil, 8000, 1)))
	if err != nil || len(got) != 0 {
		t.Fatalf("empty WAV: %v %v", got, err)
	}
	if err := WriteWAV(&memFile{}, []int16{1, 2, 3}, 8000, 2); err == nil {
		t.Error("WriteWAV of 3 samples as stereo: no error")
	}
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadWAVRejects(t *testing.T) {
	good := wavBytes(t, tone(8000, 440, 1000, 0, 800), 8000, 1)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	le := binary.LittleEndian
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"empty", "too short", nil},
		{"not wav", "not RIFF/WAVE", []byte("ID3\x03\x00\x00\x00\x00\x00\x00\x00\x00 this is an mp3")},
		{"truncated data", "truncated", good[:len(good)-100]},
		{"truncated header", "truncated fmt chunk", good[:20]},
		{"header only", "no fmt chunk", good[:12]},
		{"8 bit", "8 bits per sample", mod(func(b []byte) []byte { le.PutUint16(b[34:], 8); return b })},
		{"24 bit", "24 bits per sample", mod(func(b []byte) []byte { le.PutUint16(b[34:], 24); return b })},
		{"float", "format tag 0x3", mod(func(b []byte) []byte { le.PutUint16(b[20:], 3); return b })},
		{"6 channels", "6 channels", mod(func(b []byte) []byte { le.PutUint16(b[22:], 6); return b })},
		{"fmt too small", "fmt chunk is 4 bytes", mod(func(b []byte) []byte { le.PutUint32(b[16:], 4); return b })},
		{"huge fmt", "fmt chunk is 4294967280 bytes", mod(func(b []byte) []byte { le.PutUint32(b[16:], 0xFFFFFFF0); return b })},
		{"huge chunk", `truncated "LIST" chunk`, mod(func(b []byte) []byte {
			return append(append(b[:12:12], "LIST\xf0\xff\xff\xff"...), b[12:]...)
		})},
		{"no data", "no data chunk", good[:36]},
		{"odd data", "whole number", mod(func(b []byte) []byte { le.PutUint32(b[40:], 99); return b })},
	}
	for _, c := range cases {
		_, _, err := ReadWAV(bytes.NewReader(c.data))
		if !errors.Is(err, ErrBadWAV) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrBadWAV saying %q", c.name, err, c.want)
		}
	}
}

func TestLoadWAVFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prompt.wav")
	if err := os.WriteFile(path, wavBytes(t, tone(48000, 1000, 10000, 0, 48000), 48000, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	pcm, err := LoadWAVFile(path, 8000)
	if err != nil || len(pcm) != 8000 {
		t.Fatalf("LoadWAVFile: %d samples, %v", len(pcm), err)
	}
	if f := zeroCrossingFreq(pcm[80:], 8000); f < 985 || f > 1015 {
		t.Errorf("tone at %.1f Hz after resampling", f)
	}
	bad := filepath.Join(dir, "bad.wav")
	os.WriteFile(bad, []byte("RIFF\x00\x00\x00\x00WAVEjunk"), 0o600)
	for _, p := range []string{bad, filepath.Join(dir, "missing.wav")} {
		if _, err := LoadWAVFile(p, 8000); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("LoadWAVFile(%s): error %v, want one naming the path", p, err)
		}
	}
	if _, err := LoadWAVFile(bad, 8000); !errors.Is(err, ErrBadWAV) {
		t.Errorf("corrupt file: %v, want ErrBadWAV", err)
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(wavBytes(f, tone(8000, 440, 1000, 0, 16), 8000, 1))
	f.Add(wavBytes(f, tone(8000, 440, 1000, 0, 16), 8000, 2))
	ext := wavBytes(f, []int16{1, 2, 3, 4}, 8000, 1)
	f.Add(append(append(append([]byte(nil), ext[:36]...), "LIST\x04\x00\x00\x00abcd"...), ext[36:]...))
	f.Add([]byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"))
	f.Add([]byte("RIFF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, rate, err := ReadWAV(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadWAV) {
				t.Fatalf("error does not wrap ErrBadWAV: %v", err)
			}
			return
		}
		if rate < 1000 || rate > 192000 || 2*len(pcm) > len(b) {
			t.Fatalf("accepted: rate %d, %d samples from %d bytes", rate, len(pcm), len(b))
		}
	})
}
