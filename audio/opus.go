package audio

import (
	"fmt"

	"github.com/hraban/opus"
)

const (
	opusRate    = 48000
	opusBitrate = 24000
	// opusLossPerc is the expected loss the encoder plans FEC for; libopus
	// sends no FEC data when it is 0.
	opusLossPerc = 10
)

type opusEncoder struct {
	enc  *opus.Encoder
	rate int
}

var _ Encoder = (*opusEncoder)(nil)

// opusComplexity trades encoder CPU for quality (0-10, libopus default 10).
const opusComplexity = 5

func newOpusEncoder(rate int) (*opusEncoder, error) {
	enc, err := opus.NewEncoder(rate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("audio: opus encoder at %d Hz: %w", rate, err)
	}
	for _, set := range []struct {
		what string
		err  error
	}{
		{"bitrate", enc.SetBitrate(opusBitrate)},
		{"in-band FEC", enc.SetInBandFEC(true)},
		{"packet loss percentage", enc.SetPacketLossPerc(opusLossPerc)},
		// Complexity 5 of 10 halves the encoder's CPU for speech at this
		// bitrate with no audible loss on a phone line (see
		// BenchmarkEncodeOpus).
		{"complexity", enc.SetComplexity(opusComplexity)},
	} {
		if set.err != nil {
			return nil, fmt.Errorf("audio: opus encoder: setting %s: %w", set.what, set.err)
		}
	}
	return &opusEncoder{enc: enc, rate: rate}, nil
}

func (e *opusEncoder) Rate() int { return e.rate }

func (e *opusEncoder) String() string { return fmt.Sprintf("opus/%d encoder", e.rate) }

func (e *opusEncoder) Encode(dst []byte, pcm []int16) (int, error) {
	if want := SamplesPerFrame(e.rate); len(pcm) != want {
		return 0, fmt.Errorf("audio: opus encode: frame has %d samples, want %d (20 ms at %d Hz)", len(pcm), want, e.rate)
	}
	if len(dst) == 0 {
		return 0, fmt.Errorf("audio: opus encode: dst is empty")
	}
	// hraban/opus writes up to cap(dst); keep it within len(dst).
	n, err := e.enc.Encode(pcm, dst[:len(dst):len(dst)])
	if err != nil {
		return 0, fmt.Errorf("audio: opus encode (dst %d bytes): %w", len(dst), err)
	}
	return n, nil
}

type opusDecoder struct {
	dec  *opus.Decoder
	rate int
}

var _ FECDecoder = (*opusDecoder)(nil)

func newOpusDecoder(rate int) (*opusDecoder, error) {
	dec, err := opus.NewDecoder(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("audio: opus decoder at %d Hz: %w", rate, err)
	}
	return &opusDecoder{dec: dec, rate: rate}, nil
}

func (d *opusDecoder) Rate() int { return d.rate }

func (d *opusDecoder) String() string { return fmt.Sprintf("opus/%d decoder", d.rate) }

func (d *opusDecoder) frame(dst []int16, what string) ([]int16, error) {
	n := SamplesPerFrame(d.rate)
	if len(dst) < n {
		return nil, fmt.Errorf("audio: opus %s: dst has room for %d samples, need %d", what, len(dst), n)
	}
	return dst[:n:n], nil
}

func (d *opusDecoder) Decode(dst []int16, payload []byte) (int, error) {
	if len(payload) == 0 {
		f, err := d.frame(dst, "conceal")
		if err != nil {
			return 0, err
		}
		if err := d.dec.DecodePLC(f); err != nil {
			return 0, fmt.Errorf("audio: opus conceal: %w", err)
		}
		return len(f), nil
	}
	if len(dst) == 0 {
		return 0, fmt.Errorf("audio: opus decode: dst is empty")
	}
	// hraban/opus decodes up to cap(dst); keep it within len(dst).
	n, err := d.dec.Decode(payload, dst[:len(dst):len(dst)])
	if err != nil {
		return 0, fmt.Errorf("audio: opus decode of %d-byte payload into %d samples: %w", len(payload), len(dst), err)
	}
	return n, nil
}

func (d *opusDecoder) DecodeFEC(dst []int16, next []byte) (int, error) {
	f, err := d.frame(dst, "FEC decode")
	if err != nil {
		return 0, err
	}
	if len(next) == 0 {
		return d.Decode(f, nil)
	}
	if err := d.dec.DecodeFEC(next, f); err != nil {
		return 0, fmt.Errorf("audio: opus FEC decode of %d-byte payload: %w", len(next), err)
	}
	return len(f), nil
}
