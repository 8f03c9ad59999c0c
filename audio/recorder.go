package audio

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// recFile is what the Recorder needs of its file: sequential writes for
// the samples and WriteAt for the header patches.
var _ recFile = (*os.File)(nil)

type recFile interface {
	io.Writer
	io.WriterAt
	io.Closer
}

const (
	recChannels  = 2
	recMaxLead   = 200 * time.Millisecond          // beyond this the lagging side is padded with silence
	recBufSize   = 16 << 10                        // half a second of 8 kHz stereo: two writes a second per call
	recMaxData   = 0xFFFFFFFF - (wavHeaderLen - 8) // RIFF sizes are 32-bit
	recFilePerms = 0o640
)

// Recorder writes a two-channel 16-bit WAV file of a call, left channel the
// caller, right channel the engine, as the call goes.
//
// The file starts with a canonical 44-byte header whose RIFF and data sizes
// are patched after every second of audio and on Close, so a crash leaves a
// valid file up to the last patch followed by raw samples, which RepairWAV
// turns into a valid file again. Samples are interleaved straight into a
// 16 KB buffer that is written out when full and before each patch; a
// patch is one write of the header's bytes 4 to 43.
//
// The two sides write 20 ms frames at the recorder's rate from different
// goroutines; all methods are safe for concurrent use. Frames are copied.
// Each side's samples queue until the other side has as many, and are then
// interleaved; a side that falls more than 200 ms behind (typically the
// engine while it is silent and sends nothing) is padded with silence so the
// other side is written out at once. Close pads the shorter side.
//
// A write error (disk full, file gone) is returned by the one WriteCaller or
// WriteEngine call that met it; the recorder then turns itself off: later
// writes are no-ops that return nil, so the call goes on, and Err reports
// the error. There are no allocations per frame in steady state.
type Recorder struct {
	mu      sync.Mutex
	path    string
	f       recFile
	buf     []byte // interleaved samples not yet written, cap recBufSize
	rate    int
	maxLead int
	side    [2][]int16 // pending samples: caller, engine
	hdr     [wavHeaderLen]byte
	frames  int64 // stereo sample frames written
	patched int64 // frames at the last header patch
	err     error
	off     bool
	closed  bool
}

// NewRecorder creates (or truncates) the file at path and starts a
// recording at rate Hz.
func NewRecorder(path string, rate int) (*Recorder, error) {
	if rate < 1000 || rate > 192000 {
		return nil, fmt.Errorf("%w: recorder %s at %d Hz, want 1000..192000", ErrUnsupportedRate, path, rate)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, recFilePerms)
	if err != nil {
		return nil, fmt.Errorf("audio: recorder: %w", err)
	}
	r, err := newRecorder(f, path, rate)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func newRecorder(f recFile, path string, rate int) (*Recorder, error) {
	if rate < 1000 || rate > 192000 {
		return nil, fmt.Errorf("%w: recorder %s at %d Hz, want 1000..192000", ErrUnsupportedRate, path, rate)
	}
	lead := int(int64(rate) * int64(recMaxLead) / int64(time.Second))
	capacity := lead + 4*SamplesPerFrame(rate)
	r := &Recorder{
		path:    path,
		f:       f,
		buf:     make([]byte, 0, recBufSize),
		rate:    rate,
		maxLead: lead,
	}
	r.side[0] = make([]int16, 0, capacity)
	r.side[1] = make([]int16, 0, capacity)
	putWAVHeader(r.hdr[:], rate, recChannels, 0)
	r.buf = append(r.buf, r.hdr[:]...)
	return r, nil
}

// putWAVHeader fills a canonical 44-byte 16-bit PCM header.
func putWAVHeader(h []byte, rate, channels int, dataLen uint32) {
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], dataLen+wavHeaderLen-8)
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)
	le.PutUint16(h[20:], wavFormatPCM)
	le.PutUint16(h[22:], uint16(channels))
	le.PutUint32(h[24:], uint32(rate))
	le.PutUint32(h[28:], uint32(rate*channels*2))
	le.PutUint16(h[32:], uint16(channels*2))
	le.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	le.PutUint32(h[40:], dataLen)
}

// WriteCaller records one frame of the caller's audio (left channel).
func (r *Recorder) WriteCaller(frame []int16) error { return r.write(0, frame) }

// WriteEngine records one frame of the engine's audio (right channel).
func (r *Recorder) WriteEngine(frame []int16) error { return r.write(1, frame) }

func (r *Recorder) write(side int, frame []int16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off || r.closed {
		return nil
	}
	r.side[side] = append(r.side[side], frame...)
	if err := r.drain(false); err != nil {
		return r.fail(err)
	}
	if r.frames-r.patched >= int64(r.rate) {
		if err := r.patch(); err != nil {
			return r.fail(err)
		}
	}
	return nil
}

func (r *Recorder) fail(err error) error {
	r.err = fmt.Errorf("audio: recorder %s: %w (recording stopped)", r.path, err)
	r.off = true
	r.side[0], r.side[1] = r.side[0][:0], r.side[1][:0]
	return r.err
}

// drain interleaves what both sides have, and when one side leads by more
// than maxLead (or final is set) also what it has beyond the other, against
// silence.
func (r *Recorder) drain(final bool) error {
	a, b := r.side[0], r.side[1]
	n := min(len(a), len(b))
	if d := len(a) - len(b); final || d > r.maxLead || -d > r.maxLead {
		n = max(len(a), len(b))
	}
	if n == 0 {
		return nil
	}
	if r.frames+int64(n) > recMaxData/4 {
		return fmt.Errorf("recording longer than the 4 GiB a WAV file can hold")
	}
	le := binary.LittleEndian
	for done := 0; done < n; {
		if len(r.buf) == cap(r.buf) {
			if err := r.flush(); err != nil {
				return err
			}
		}
		k := min(n-done, (cap(r.buf)-len(r.buf))/4)
		out := r.buf[len(r.buf) : len(r.buf)+4*k]
		// Both sides hold samples up to na and nb; past them a side is
		// silence (the padding of a lagging side).
		na, nb := min(max(len(a)-done, 0), k), min(max(len(b)-done, 0), k)
		if na == k && nb == k {
			l, rt := a[done:done+k], b[done:done+k]
			for i := range k {
				le.PutUint32(out[4*i:], uint32(uint16(l[i]))|uint32(uint16(rt[i]))<<16)
			}
		} else {
			for i := range k {
				var l, rt int16
				if i < na {
					l = a[done+i]
				}
				if i < nb {
					rt = b[done+i]
				}
				le.PutUint16(out[4*i:], uint16(l))
				le.PutUint16(out[4*i+2:], uint16(rt))
			}
		}
		r.buf = r.buf[:len(r.buf)+4*k]
		done += k
		r.frames += int64(k)
	}
	r.side[0] = a[:copy(a, a[min(n, len(a)):])]
	r.side[1] = b[:copy(b, b[min(n, len(b)):])]
	return nil
}

// flush writes out the buffered samples.
func (r *Recorder) flush() error {
	if len(r.buf) == 0 {
		return nil
	}
	n, err := r.f.Write(r.buf)
	if err == nil && n < len(r.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return err
	}
	r.buf = r.buf[:0]
	return nil
}

// patch flushes the samples and then writes the sizes into the header, so
// the header never claims more than the file holds. The RIFF size (bytes
// 4-7) and the data size (40-43) go in one write of bytes 4 to 43, the
// bytes between them unchanged.
func (r *Recorder) patch() error {
	if err := r.flush(); err != nil {
		return err
	}
	putWAVHeader(r.hdr[:], r.rate, recChannels, uint32(r.frames*4))
	if _, err := r.f.WriteAt(r.hdr[4:], 4); err != nil {
		return fmt.Errorf("patching the header's sizes: %w", err)
	}
	r.patched = r.frames
	return nil
}

// Sync writes out what both sides have in common and patches the header
// now (Close does it too). It reports a write error like the writes do.
func (r *Recorder) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off || r.closed {
		return nil
	}
	if err := r.drain(false); err != nil {
		return r.fail(err)
	}
	if err := r.patch(); err != nil {
		return r.fail(err)
	}
	return nil
}

// Close pads the shorter side with silence, flushes, writes the final
// header and closes the file. It returns the recorder's error if a write
// had failed (the file holds the call up to that point), or the error of
// the final writes. Calling Close again returns nil.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if !r.off {
		err := r.drain(true)
		if err == nil {
			err = r.patch()
		}
		if err != nil {
			r.fail(err)
		}
	}
	if cerr := r.f.Close(); cerr != nil && r.err == nil {
		r.err = fmt.Errorf("audio: recorder %s: closing: %w", r.path, cerr)
	}
	return r.err
}

// Duration returns the length of the recording so far, counting the
// samples still queued on the leading side.
func (r *Recorder) Duration() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.frames + int64(max(len(r.side[0]), len(r.side[1])))
	return time.Duration(n) * time.Second / time.Duration(r.rate)
}

// Err returns the write error that stopped the recording, or nil.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Rate returns the recording's sample rate.
func (r *Recorder) Rate() int { return r.rate }

// RepairWAV fixes the RIFF and data sizes of a WAV file with a canonical
// 44-byte header (as Recorder writes) from the file's length, e.g. after a
// crash left samples after the last header patch. A trailing partial sample
// frame is cut off. Errors wrap ErrBadWAV when the file is not such a WAV.
func RepairWAV(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("audio: repairing WAV: %w", err)
	}
	defer f.Close()
	var h [wavHeaderLen]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return fmt.Errorf("%w: repairing %s: reading the 44-byte header: %v", ErrBadWAV, path, err)
	}
	le := binary.LittleEndian
	if string(h[0:4]) != "RIFF" || string(h[8:16]) != "WAVEfmt " || le.Uint32(h[16:]) != 16 || string(h[36:40]) != "data" {
		return fmt.Errorf("%w: repairing %s: not a canonical 44-byte WAV header (RIFF, WAVE, 16-byte fmt, data)", ErrBadWAV, path)
	}
	align := int64(le.Uint16(h[32:]))
	if align == 0 {
		return fmt.Errorf("%w: repairing %s: block align is 0", ErrBadWAV, path)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audio: repairing %s: %w", path, err)
	}
	data := st.Size() - wavHeaderLen
	data -= data % align
	if data > recMaxData {
		data = recMaxData - recMaxData%align
	}
	if st.Size() > wavHeaderLen+data {
		if err := f.Truncate(wavHeaderLen + data); err != nil {
			return fmt.Errorf("audio: repairing %s: cutting the partial sample frame: %w", path, err)
		}
	}
	le.PutUint32(h[4:], uint32(data+wavHeaderLen-8))
	le.PutUint32(h[40:], uint32(data))
	if _, err := f.WriteAt(h[:], 0); err != nil {
		return fmt.Errorf("audio: repairing %s: writing header: %w", path, err)
	}
	return f.Close()
}
