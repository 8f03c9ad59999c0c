package ivr

import (
	"log/slog"
	"sync/atomic"

	"github.com/govline/ivr/audio"
)

// Recording is the two-channel recording of one call (caller left, engine
// right). A write error (a full disk, say) is logged and counted once and
// turns the recording off; the call goes on.
type Recording struct {
	Path    string
	rec     *audio.Recorder
	metrics *Metrics
	log     *slog.Logger
	failed  atomic.Bool
}

func openRecording(dir string, info CallInfo, m *Metrics, log *slog.Logger) (*Recording, error) {
	path := recordingPath(dir, info)
	if err := ensureDir(path); err != nil {
		return nil, err
	}
	r, err := audio.NewRecorder(path, info.Rate)
	if err != nil {
		return nil, err
	}
	return &Recording{Path: path, rec: r, metrics: m, log: log}, nil
}

func (r *Recording) fail(err error) {
	if err != nil && r.failed.CompareAndSwap(false, true) {
		r.metrics.RecordingErrors.Add(1)
		r.log.Error("recording stopped by a write error; the call goes on", "path", r.Path, "err", err)
	}
}

// Caller appends one frame of caller audio.
func (r *Recording) Caller(frame []int16) {
	if r == nil || r.failed.Load() {
		return
	}
	r.fail(r.rec.WriteCaller(frame))
}

// Engine appends one frame of what the engine played.
func (r *Recording) Engine(frame []int16) {
	if r == nil || r.failed.Load() {
		return
	}
	r.fail(r.rec.WriteEngine(frame))
}

// Sync writes out what the recording holds and patches its header, so
// that a crash loses nothing written before (a no-op on a nil or failed
// recording).
func (r *Recording) Sync() {
	if r == nil || r.failed.Load() {
		return
	}
	r.fail(r.rec.Sync())
}

// Close finishes the file.
func (r *Recording) Close() error {
	err := r.rec.Close()
	if r.failed.Load() {
		return nil // already reported
	}
	return err
}
