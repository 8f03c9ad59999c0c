package audio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	goaudio "github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

const (
	wavFormatPCM        = 1
	wavFormatExtensible = 0xFFFE
	wavHeaderLen        = 44 // canonical header: RIFF, fmt (16 bytes), data
	maxWAVBytes         = 1 << 31
)

// wavInfo is what the RIFF walk found.
type wavInfo struct {
	channels   int
	rate       int
	bits       int
	blockAlign int
	dataOff    int64
	dataLen    int64
}

// parseWAV walks the RIFF chunks of b and validates everything the decoder
// will rely on, so that no input can make go-audio/wav panic or allocate
// more than the file's size.
func parseWAV(b []byte) (wavInfo, error) {
	var wi wavInfo
	if len(b) < 12 {
		return wi, fmt.Errorf("%w: %d bytes is too short for a RIFF header", ErrBadWAV, len(b))
	}
	if string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return wi, fmt.Errorf("%w: not RIFF/WAVE (starts with %q)", ErrBadWAV, b[:min(12, len(b))])
	}
	size := int64(len(b))
	off := int64(12)
	gotFmt := false
	for {
		if off+8 > size {
			if !gotFmt {
				return wi, fmt.Errorf("%w: no fmt chunk before the end of the file (offset %d)", ErrBadWAV, off)
			}
			return wi, fmt.Errorf("%w: no data chunk before the end of the file (offset %d)", ErrBadWAV, off)
		}
		id := string(b[off : off+4])
		n := int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if n < 16 || n > 1024 {
				return wi, fmt.Errorf("%w: fmt chunk is %d bytes, want 16..1024", ErrBadWAV, n)
			}
			if body+n > size {
				return wi, fmt.Errorf("%w: truncated fmt chunk (%d bytes, %d left in file)", ErrBadWAV, n, size-body)
			}
			f := b[body : body+n]
			tag := binary.LittleEndian.Uint16(f[0:])
			wi.channels = int(binary.LittleEndian.Uint16(f[2:]))
			wi.rate = int(binary.LittleEndian.Uint32(f[4:]))
			wi.blockAlign = int(binary.LittleEndian.Uint16(f[12:]))
			wi.bits = int(binary.LittleEndian.Uint16(f[14:]))
			if tag == wavFormatExtensible {
				if n < 40 {
					return wi, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE fmt chunk is %d bytes, want 40", ErrBadWAV, n)
				}
				tag = binary.LittleEndian.Uint16(f[24:]) // sub-format GUID starts with the format tag
			}
			if tag != wavFormatPCM {
				return wi, fmt.Errorf("%w: format tag %#x, want 1 (linear PCM)", ErrBadWAV, tag)
			}
			if wi.bits != 16 {
				return wi, fmt.Errorf("%w: %d bits per sample, want 16", ErrBadWAV, wi.bits)
			}
			if wi.channels != 1 && wi.channels != 2 {
				return wi, fmt.Errorf("%w: %d channels, want 1 or 2", ErrBadWAV, wi.channels)
			}
			if wi.rate < 1000 || wi.rate > 192000 {
				return wi, fmt.Errorf("%w: sample rate %d Hz, want 1000..192000", ErrBadWAV, wi.rate)
			}
			if wi.blockAlign != 2*wi.channels {
				return wi, fmt.Errorf("%w: block align %d, want %d for %d channels of 16 bits", ErrBadWAV, wi.blockAlign, 2*wi.channels, wi.channels)
			}
			gotFmt = true
		case "data":
			if !gotFmt {
				return wi, fmt.Errorf("%w: data chunk before the fmt chunk", ErrBadWAV)
			}
			if body+n > size {
				return wi, fmt.Errorf("%w: truncated: data chunk says %d bytes, file has %d after its header (RepairWAV fixes a recording cut short)", ErrBadWAV, n, size-body)
			}
			if n%int64(wi.blockAlign) != 0 {
				return wi, fmt.Errorf("%w: data chunk of %d bytes is not a whole number of %d-byte sample frames", ErrBadWAV, n, wi.blockAlign)
			}
			wi.dataOff, wi.dataLen = body, n
			return wi, nil
		default:
			if body+n > size {
				return wi, fmt.Errorf("%w: truncated %q chunk (%d bytes, %d left in file)", ErrBadWAV, id, n, size-body)
			}
		}
		off = body + n + n&1
	}
}

// ReadWAV reads a 16-bit linear PCM WAV file (mono, or stereo which it
// mixes down to mono) and returns its samples and sample rate. Anything
// else (not RIFF/WAVE, truncated, another bit depth or format, corrupt
// chunks) is an error wrapping ErrBadWAV that says what is wrong. It never
// panics. It reads the whole stream into memory (files up to 2 GiB).
func ReadWAV(r io.ReadSeeker) (pcm []int16, rate int, err error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("audio: reading WAV: seek: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxWAVBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("audio: reading WAV: %w", err)
	}
	if len(b) > maxWAVBytes {
		return nil, 0, fmt.Errorf("%w: larger than %d bytes", ErrBadWAV, maxWAVBytes)
	}
	wi, err := parseWAV(b)
	if err != nil {
		return nil, 0, err
	}
	samples, err := decodeWithGoAudio(b, wi)
	if err != nil {
		return nil, 0, err
	}
	if wi.channels == 1 {
		pcm = make([]int16, len(samples))
		for i, s := range samples {
			pcm[i] = int16(s)
		}
		return pcm, wi.rate, nil
	}
	pcm = make([]int16, len(samples)/2)
	for i := range pcm {
		pcm[i] = int16((samples[2*i] + samples[2*i+1]) >> 1)
	}
	return pcm, wi.rate, nil
}

// decodeWithGoAudio decodes the validated file with go-audio/wav and checks
// that it agrees with our own walk of the chunks.
func decodeWithGoAudio(b []byte, wi wavInfo) (samples []int, err error) {
	defer func() {
		if p := recover(); p != nil {
			samples, err = nil, fmt.Errorf("%w: the WAV decoder failed on this file: %v", ErrBadWAV, p)
		}
	}()
	// Give the decoder exactly the RIFF chunks up to the end of data, so
	// trailing bytes (e.g. a recording written after its last header patch)
	// are ignored.
	d := wav.NewDecoder(bytes.NewReader(b[:wi.dataOff+wi.dataLen]))
	buf, err := d.FullPCMBuffer()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadWAV, err)
	}
	if int(d.NumChans) != wi.channels || int(d.SampleRate) != wi.rate || d.BitDepth != 16 {
		return nil, fmt.Errorf("%w: unusual chunk layout: decoder read %d ch %d Hz %d bit, header says %d ch %d Hz 16 bit",
			ErrBadWAV, d.NumChans, d.SampleRate, d.BitDepth, wi.channels, wi.rate)
	}
	if want := int(wi.dataLen / 2); len(buf.Data) != want {
		return nil, fmt.Errorf("%w: unusual chunk layout: decoder read %d samples, data chunk holds %d", ErrBadWAV, len(buf.Data), want)
	}
	return buf.Data, nil
}

// LoadWAVFile reads a WAV file (see ReadWAV) and resamples it to wantRate.
// Errors name the path.
func LoadWAVFile(path string, wantRate int) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: loading WAV: %w", err)
	}
	defer f.Close()
	pcm, rate, err := ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("audio: loading %s: %w", path, err)
	}
	out, err := Resample(pcm, rate, wantRate)
	if err != nil {
		return nil, fmt.Errorf("audio: loading %s: %w", path, err)
	}
	return out, nil
}

// Resample converts a whole signal (not a stream) from one rate to another,
// compensating the filter delay so the output lines up with the input and
// has exactly len(pcm)*to/from samples. It allocates the result.
func Resample(pcm []int16, from, to int) ([]int16, error) {
	r, err := NewResampler(from, to)
	if err != nil {
		return nil, err
	}
	want := int(int64(len(pcm)) * int64(to) / int64(from))
	if from == to {
		return append([]int16(nil), pcm...), nil
	}
	delay := r.Delay()
	tail := make([]int16, (delay*from+to-1)/to+r.m)
	out := make([]int16, r.OutLen(len(pcm))+r.OutLen(len(tail))+1)
	n := r.Process(out, pcm)
	n += r.Process(out[n:], tail)
	if n < delay+want {
		return nil, fmt.Errorf("audio: resample %d->%d: produced %d samples, want %d (bug)", from, to, n, delay+want)
	}
	return out[delay : delay+want : delay+want], nil
}

// WriteWAV writes pcm (interleaved if channels > 1) as a 16-bit PCM WAV
// file with a canonical 44-byte header, through go-audio/wav.
func WriteWAV(w io.WriteSeeker, pcm []int16, rate, channels int) error {
	if channels < 1 || channels > 8 {
		return fmt.Errorf("audio: writing WAV: %d channels, want 1..8", channels)
	}
	if rate < 1000 || rate > 192000 {
		return fmt.Errorf("%w: writing WAV at %d Hz, want 1000..192000", ErrUnsupportedRate, rate)
	}
	if len(pcm)%channels != 0 {
		return fmt.Errorf("audio: writing WAV: %d samples is not a whole number of %d-channel frames", len(pcm), channels)
	}
	data := make([]int, len(pcm))
	for i, s := range pcm {
		data[i] = int(s)
	}
	enc := wav.NewEncoder(w, rate, 16, channels, wavFormatPCM)
	buf := &goaudio.IntBuffer{
		Format:         &goaudio.Format{NumChannels: channels, SampleRate: rate},
		Data:           data,
		SourceBitDepth: 16,
	}
	if err := enc.Write(buf); err != nil {
		return fmt.Errorf("audio: writing WAV: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("audio: writing WAV header: %w", err)
	}
	return nil
}
