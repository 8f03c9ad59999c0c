package ivr

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/govline/ivr/redact"
)

// Recover keeps a bug on one goroutine from ending the process and every
// call in it. Every goroutine the engine and its telephony adapters start
// defers it first (where a call is served, Engine.Serve, and each
// adapter's connection, call, RTP and event goroutines): a panic is
// logged with its stack (the panic's text masked like every log line),
// counted in ivr_panics_total, and then after (when not nil) runs with
// the panic's value, to end the call it hit; the goroutine then returns
// as if its function had. Recover must be deferred directly
// (`defer ivr.Recover(...)`): recover works only there. m may be nil.
func Recover(m *Metrics, log *slog.Logger, where string, after func(v any)) {
	v := recover()
	if v == nil {
		return
	}
	Panicked(m, log, where, v, debug.Stack())
	if after != nil {
		after(v)
	}
}

// Panicked logs and counts a panic that was recovered elsewhere (the
// audio sender recovers its streams' panics itself).
func Panicked(m *Metrics, log *slog.Logger, where string, v any, stack []byte) {
	if m != nil {
		m.Panics.Add(1)
	}
	if log == nil {
		log = slog.Default()
	}
	log.Error("panic recovered: a bug, please report this line", "where", where,
		"panic", redact.Text(fmt.Sprint(v)), "stack", string(stack))
}

// PanicError is the end cause of a call a panic ended.
func PanicError(v any) error {
	return fmt.Errorf("internal error (panic: %s)", redact.Text(fmt.Sprint(v)))
}
