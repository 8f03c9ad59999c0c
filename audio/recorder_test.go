package audio

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// readStereo reads a two-channel recording without mixing it down.
func readStereo(t *testing.T, path string) (left, right []int16) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wi, err := parseWAV(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if wi.channels != 2 {
		t.Fatalf("%s: %d channels", path, wi.channels)
	}
	d := b[wi.dataOff : wi.dataOff+wi.dataLen]
	for i := 0; i+3 < len(d); i += 4 {
		left = append(left, int16(binary.LittleEndian.Uint16(d[i:])))
		right = append(right, int16(binary.LittleEndian.Uint16(d[i+2:])))
	}
	return left, right
}

func TestRecorderBothChannels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "call.wav")
	r, err := NewRecorder(path, 8000)
	if err != nil {
		t.Fatal(err)
	}
	for f := range 100 { // 2 s
		if err := r.WriteCaller(tone(8000, 440, 8000, f*160, 160)); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteEngine(tone(8000, 1000, 4000, f*160, 160)); err != nil {
			t.Fatal(err)
		}
	}
	if d := r.Duration(); d != 2*time.Second {
		t.Errorf("Duration %v, want 2s", d)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	l, rt := readStereo(t, path)
	if len(l) != 16000 {
		t.Fatalf("%d samples per channel, want 16000", len(l))
	}
	if !slicesEqual(l, tone(8000, 440, 8000, 0, 16000)) || !slicesEqual(rt, tone(8000, 1000, 4000, 0, 16000)) {
		t.Error("channels do not hold caller (left) and engine (right) exactly")
	}
	if _, rate, err := ReadWAV(mustOpen(t, path)); err != nil || rate != 8000 {
		t.Errorf("ReadWAV of the recording: rate %d, %v", rate, err)
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// The engine is silent (sends nothing) for 1 s, then speaks; the caller
// talks all along. The engine's speech must land where it was said, not at
// the start of the file.
func TestRecorderPadsSilentSide(t *testing.T) {
	path := filepath.Join(t.TempDir(), "call.wav")
	r, _ := NewRecorder(path, 8000)
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = 1000
	}
	for f := range 100 {
		r.WriteCaller(frame)
		if f >= 50 {
			r.WriteEngine(frame)
		}
	}
	r.Close()
	l, rt := readStereo(t, path)
	if len(l) != 16000 {
		t.Fatalf("%d samples, want 16000", len(l))
	}
	first := -1
	for i, s := range rt {
		if s != 0 {
			first = i
			break
		}
	}
	// The lagging side is padded once it is 200 ms behind, so the engine's
	// first sample lands within 200 ms of 1 s.
	if first < 8000-1600 || first > 8000 {
		t.Errorf("engine audio starts at sample %d, want about 8000 (1 s)", first)
	}
	for i, s := range l {
		if s != 1000 {
			t.Fatalf("caller channel sample %d is %d", i, s)
		}
	}
	// Close pads the shorter side: only the caller wrote after this.
	path2 := filepath.Join(t.TempDir(), "short.wav")
	r2, _ := NewRecorder(path2, 8000)
	r2.WriteCaller(frame)
	r2.WriteCaller(frame)
	r2.WriteEngine(frame)
	if d := r2.Duration(); d != 40*time.Millisecond {
		t.Errorf("Duration %v, want 40ms", d)
	}
	r2.Close()
	l, rt = readStereo(t, path2)
	if len(l) != 320 || rt[159] != 1000 || rt[160] != 0 {
		t.Errorf("close padding: %d samples, right[159]=%d right[160]=%d", len(l), rt[159], rt[160])
	}
}

func TestRecorderReadableWhileOpenAndAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "call.wav")
	const rate = 48000
	r, _ := NewRecorder(path, rate)
	spf := SamplesPerFrame(rate)
	for f := range 125 { // 2.5 s
		r.WriteCaller(tone(rate, 440, 8000, f*spf, spf))
		r.WriteEngine(tone(rate, 440, 8000, f*spf, spf))
	}
	// Mid-call: the header has been patched at 1 s and 2 s.
	pcm, got, err := ReadWAV(mustOpen(t, path))
	if err != nil || got != rate {
		t.Fatalf("reading the recording mid-call: %v", err)
	}
	if len(pcm) != 2*rate {
		t.Errorf("mid-call read: %d samples, want %d (the data up to the last patch)", len(pcm), 2*rate)
	}
	if !slicesEqual(pcm, tone(rate, 440, 8000, 0, len(pcm))) {
		t.Error("mid-call read: samples differ")
	}
	// Crash: never Close. The file holds more than the header says.
	st, _ := os.Stat(path)
	if st.Size() <= 44+int64(4*len(pcm)) {
		t.Fatalf("expected raw data after the last patch: file %d bytes", st.Size())
	}
	if err := RepairWAV(path); err != nil {
		t.Fatal(err)
	}
	l, rt := readStereo(t, path)
	if len(l) <= len(pcm) || !slicesEqual(l, tone(rate, 440, 8000, 0, len(l))) || !slicesEqual(rt, l) {
		t.Errorf("after repair: %d samples (had %d before), or samples differ", len(l), len(pcm))
	}
	// A partial trailing sample frame is cut.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{1, 2, 3})
	f.Close()
	if err := RepairWAV(path); err != nil {
		t.Fatal(err)
	}
	if l2, _ := readStereo(t, path); len(l2) != len(l) {
		t.Errorf("after a partial frame: %d samples, want %d", len(l2), len(l))
	}
	notWAV := filepath.Join(t.TempDir(), "x.wav")
	os.WriteFile(notWAV, make([]byte, 100), 0o600)
	if err := RepairWAV(notWAV); !errors.Is(err, ErrBadWAV) {
		t.Errorf("RepairWAV of zeros: %v, want ErrBadWAV", err)
	}
}

// failFile accepts n bytes, then fails like a full disk.
type failFile struct {
	n      int
	writes int
}

var errDiskFull = errors.New("no space left on device")

func (f *failFile) Write(p []byte) (int, error) {
	f.writes++
	if len(p) > f.n {
		return 0, errDiskFull
	}
	f.n -= len(p)
	return len(p), nil
}
func (f *failFile) WriteAt(p []byte, off int64) (int, error) { return f.Write(p) }
func (f *failFile) Close() error                             { return nil }

func TestRecorderWriteErrorTurnsItOff(t *testing.T) {
	ff := &failFile{n: 100000}
	r, err := newRecorder(ff, "mem", 8000)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]int16, 160)
	var errs []error
	for range 500 { // 10 s; fails when the 100 kB are used up
		if err := r.WriteCaller(frame); err != nil {
			errs = append(errs, err)
		}
		if err := r.WriteEngine(frame); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) != 1 || !errors.Is(errs[0], errDiskFull) {
		t.Fatalf("write errors %v, want exactly one wrapping the disk error", errs)
	}
	if !errors.Is(r.Err(), errDiskFull) {
		t.Errorf("Err() = %v", r.Err())
	}
	w := ff.writes
	r.WriteCaller(frame)
	if ff.writes != w {
		t.Error("recorder still writes after the error")
	}
	if err := r.Close(); !errors.Is(err, errDiskFull) {
		t.Errorf("Close: %v, want the recording's error", err)
	}
}

func TestRecorderDevFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	r, err := NewRecorder("/dev/full", 8000)
	if err != nil {
		t.Skipf("cannot open /dev/full: %v", err)
	}
	frame := make([]int16, 160)
	n := 0
	for range 200 {
		if err := r.WriteCaller(frame); err != nil {
			n++
		}
		if err := r.WriteEngine(frame); err != nil {
			n++
		}
	}
	if n != 1 || r.Err() == nil {
		t.Errorf("/dev/full: %d errors returned, Err()=%v; want 1 and set", n, r.Err())
	}
	t.Logf("/dev/full: %v", r.Err())
	r.Close()
}

func TestRecorderConcurrentSides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "call.wav")
	r, _ := NewRecorder(path, 16000)
	var wg sync.WaitGroup
	for side := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := make([]int16, 320)
			for i := range frame {
				frame[i] = int16(side*2000 + 1000)
			}
			for range 250 {
				if side == 0 {
					r.WriteCaller(frame)
				} else {
					r.WriteEngine(frame)
				}
			}
		}()
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	l, rt := readStereo(t, path)
	// Scheduling may pad a side when it falls 200 ms behind; every frame is
	// still there, and nothing is lost.
	var nl, nr int
	for i := range l {
		if l[i] == 1000 {
			nl++
		}
		if rt[i] == 3000 {
			nr++
		}
	}
	if nl != 250*320 || nr != 250*320 {
		t.Errorf("caller %d, engine %d samples recorded, want %d each", nl, nr, 250*320)
	}
	if r.Duration() < 5*time.Second {
		t.Errorf("Duration %v", r.Duration())
	}
}

func TestRecorderZeroAllocs(t *testing.T) {
	r, _ := NewRecorder(filepath.Join(t.TempDir(), "call.wav"), 8000)
	defer r.Close()
	frame := tone(8000, 440, 1000, 0, 160)
	if a := testing.AllocsPerRun(500, func() { r.WriteCaller(frame); r.WriteEngine(frame) }); a != 0 {
		t.Errorf("%.2f allocs per frame pair", a)
	}
}
