package audio

import (
	"fmt"
	"strings"
)

// Encoder turns one 20 ms frame of PCM at Rate() into an RTP payload.
//
// Encode writes the payload into dst and returns its length; dst is owned by
// the caller and must have room for the payload (len(pcm) bytes for G.711,
// up to 1275 bytes for Opus; see MaxPayloadSize). pcm is only read during
// the call. An Encoder keeps state between frames and is not safe for
// concurrent use: use one per call direction.
type Encoder interface {
	Rate() int
	Encode(dst []byte, pcm []int16) (int, error)
}

// Decoder turns one RTP payload into PCM at Rate().
//
// Decode writes the samples into dst (owned by the caller) and returns how
// many it wrote. Decode(dst, nil) (or an empty payload) conceals one lost
// 20 ms frame: Opus packet-loss concealment, or for G.711 a repetition of the
// last frame fading to silence. payload is only read during the call. A
// Decoder keeps state between frames and is not safe for concurrent use.
type Decoder interface {
	Rate() int
	Decode(dst []int16, payload []byte) (int, error)
}

// FECDecoder is implemented by decoders whose payloads carry forward error
// correction (Opus). When slot N was lost and packet N+1 has arrived,
// DecodeFEC(dst, payloadN1) reconstructs slot N from it (call it instead of
// Decode(dst, nil), then decode payloadN1 normally). Same rules as Decoder.
type FECDecoder interface {
	Decoder
	DecodeFEC(dst []int16, next []byte) (int, error)
}

// MaxPayloadSize is a dst size for Encoder.Encode that is enough for every
// codec of this package at 20 ms (Opus caps a frame at 1275 bytes).
const MaxPayloadSize = 1500

// Codec names as they appear in SDP rtpmap lines.
const (
	CodecPCMU = "PCMU"
	CodecPCMA = "PCMA"
	CodecOpus = "opus"
)

// NewEncoder returns an encoder for the SDP codec name (case-insensitive):
// "PCMU", "PCMA" (8000 Hz) or "opus" (48000 Hz mono, VoIP application,
// 24 kbit/s, in-band FEC on). An unknown name is an error wrapping
// ErrUnknownCodec that names it.
func NewEncoder(codec string) (Encoder, error) {
	switch strings.ToLower(codec) {
	case "pcmu":
		return &ulawEncoder{}, nil
	case "pcma":
		return &alawEncoder{}, nil
	case "opus":
		return newOpusEncoder(opusRate)
	}
	return nil, fmt.Errorf("%w %q (want PCMU, PCMA or opus)", ErrUnknownCodec, codec)
}

// NewDecoder returns a decoder for the SDP codec name (case-insensitive):
// "PCMU", "PCMA" (8000 Hz) or "opus" (48000 Hz mono; also implements
// FECDecoder). An unknown name is an error wrapping ErrUnknownCodec.
func NewDecoder(codec string) (Decoder, error) {
	switch strings.ToLower(codec) {
	case "pcmu":
		return &g711Decoder{table: &ulawToLinear, name: "PCMU"}, nil
	case "pcma":
		return &g711Decoder{table: &alawToLinear, name: "PCMA"}, nil
	case "opus":
		return newOpusDecoder(opusRate)
	}
	return nil, fmt.Errorf("%w %q (want PCMU, PCMA or opus)", ErrUnknownCodec, codec)
}

// NewEncoderAt is NewEncoder for a caller that works at rate: Opus encodes
// from 8, 12, 16, 24 or 48 kHz PCM natively, so a 16 kHz call needs no
// resampler. G.711 is 8 kHz whatever rate says; check Rate().
func NewEncoderAt(codec string, rate int) (Encoder, error) {
	if strings.EqualFold(codec, CodecOpus) && opusNativeRate(rate) {
		return newOpusEncoder(rate)
	}
	return NewEncoder(codec)
}

// NewDecoderAt is NewDecoder for a caller that works at rate: Opus decodes
// to 8, 12, 16, 24 or 48 kHz natively. G.711 is 8 kHz whatever rate says.
func NewDecoderAt(codec string, rate int) (Decoder, error) {
	if strings.EqualFold(codec, CodecOpus) && opusNativeRate(rate) {
		return newOpusDecoder(rate)
	}
	return NewDecoder(codec)
}

func opusNativeRate(rate int) bool {
	switch rate {
	case 8000, 12000, 16000, 24000, 48000:
		return true
	}
	return false
}
