package redact

import (
	"context"
	"fmt"
	"log/slog"
)

// DefaultKeep are the attribute keys whose values NewHandler passes
// unmasked: identifiers the administrators grep for, which hold no
// personal data but may hold long digit runs (an Asterisk channel id is a
// Unix time; a ticket number is eight digits).
var DefaultKeep = []string{"call_id", "ticket", "component", "agent", "queue", "method", "transport", "codec", "kind", "reason", "state"}

// NewHandler returns an slog.Handler that masks, with Text, the message and
// every string, error and other non-numeric value of a record before h
// sees it; LogValuers are resolved first. The values of the keys in keep
// (DefaultKeep when keep is nil) pass unmasked. Numbers, durations, times
// and booleans pass as they are.
//
// It is the daemon's last line of defence: personal data that reaches a
// log line through a library's error text is masked there.
func NewHandler(h slog.Handler, keep []string) slog.Handler {
	if keep == nil {
		keep = DefaultKeep
	}
	k := make(map[string]bool, len(keep))
	for _, s := range keep {
		k[s] = true
	}
	return &handler{h: h, keep: k}
}

type handler struct {
	h    slog.Handler
	keep map[string]bool
}

func (r *handler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, Text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = r.attr(a)
	}
	return &handler{h: r.h.WithAttrs(red), keep: r.keep}
}

func (r *handler) WithGroup(name string) slog.Handler {
	return &handler{h: r.h.WithGroup(name), keep: r.keep}
}

// attr masks one attribute (and the members of a group).
func (r *handler) attr(a slog.Attr) slog.Attr {
	if r.keep[a.Key] {
		return a
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Text(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = r.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Text(err.Error()))
		}
		return slog.String(a.Key, Text(fmt.Sprint(v.Any())))
	}
	return slog.Attr{Key: a.Key, Value: v}
}
