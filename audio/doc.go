// Package audio turns RTP payloads into the engine's one internal audio form
// and back, and keeps the files of a call.
//
// The internal form is 16-bit linear PCM, mono, in fixed frames of
// FrameDuration (20 ms) at 8000, 16000 or 48000 Hz, carried as []int16.
// Conversions happen once, at the edge of a call:
//
//   - Encoder and Decoder: G.711 µ-law ("PCMU") and A-law ("PCMA"),
//     implemented here (table decode, segment-arithmetic encode) bit-exact
//     with the ITU-T G.191 reference G.711 code, and
//     Opus ("opus", through github.com/hraban/opus and libopus).
//   - Resampler: stateful polyphase windowed-sinc conversion between rates.
//   - JitterBuffer: reorders one inbound RTP stream by sequence number and
//     says which 20 ms slots are lost so the decoder can conceal them;
//     Framer cuts the decoded samples into 20 ms frames.
//   - Pacer: the absolute 20 ms send schedule of an outbound stream, on an
//     injectable Clock; Sender: the sharded, paced sender of every
//     outbound stream of a telephony adapter (FrameSender), on Pacers.
//   - FrameQueue: a bounded queue of frames between two goroutines of a
//     call, with a free list (the adapters' inbound and outbound queues).
//   - ReadWAV, LoadWAVFile, WriteWAV: WAV files at the edges (prompts,
//     tests), through github.com/go-audio/wav.
//   - Recorder: a two-channel WAV of a call (caller left, engine right)
//     written as the call goes, readable after a crash (RepairWAV).
//
// Nothing on the per-frame path allocates: codecs, the resampler, the jitter
// buffer and the recorder reuse storage they own. Unless a type's comment
// says otherwise it is not safe for concurrent use; each call direction owns
// its own instances.
package audio

import (
	"errors"
	"time"
)

// FrameDuration is the fixed duration of one internal audio frame.
const FrameDuration = 20 * time.Millisecond

// framesPerSecond is 1s / FrameDuration.
const framesPerSecond = int(time.Second / FrameDuration)

// SamplesPerFrame returns the number of mono samples in one 20 ms frame at
// rate Hz (rate/50): 160 at 8000 Hz, 320 at 16000 Hz, 960 at 48000 Hz.
func SamplesPerFrame(rate int) int { return rate / framesPerSecond }

// Errors that callers classify with errors.Is.
var (
	// ErrBadWAV wraps every error about a WAV file that is not a readable
	// 16-bit PCM WAV (not RIFF/WAVE, truncated, corrupt, wrong bit depth).
	ErrBadWAV = errors.New("audio: bad WAV file")
	// ErrUnknownCodec wraps the error of NewEncoder/NewDecoder for a codec
	// name this package does not implement.
	ErrUnknownCodec = errors.New("audio: unknown codec")
	// ErrUnsupportedRate wraps errors about a sample rate a component
	// cannot handle.
	ErrUnsupportedRate = errors.New("audio: unsupported sample rate")
)
