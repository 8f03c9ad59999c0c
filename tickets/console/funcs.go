package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/tickets"

	"github.com/govline/ivr/redact"
)

// funcs are the template functions that do not depend on the language.
var funcs = template.FuncMap{
	// unsure: a spoken answer below the confidence at which the flows
	// confirm it (speech.ConfirmBelow, flows.DefaultConfirmBelow).
	"unsure": func(t tickets.Turn) bool { return t.Mode == tickets.ModeSpeech && t.Confidence < speech.ConfirmBelow },
	"overdue": func(t tickets.Ticket) bool {
		return t.Resolved == nil && t.Status != tickets.StatusClosed && time.Now().After(t.Deadline)
	},
	"roman":  roman,
	"masked": redact.Mask,
	"eq2":    func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
	// offset is the seconds from start (the recording's first sample) to
	// at, for the player ("12.345", never negative); "" without a start.
	"offset": func(at time.Time, start *time.Time) string {
		if start == nil {
			return ""
		}
		return strconv.FormatFloat(max(0, at.Sub(*start).Seconds()), 'f', 3, 64)
	},
	// mmss is the same moment as m:ss (h:mm:ss from an hour).
	"mmss": func(at time.Time, start *time.Time) string {
		if start == nil {
			return ""
		}
		return mmss(at.Sub(*start))
	},
}

func roman(l int) string { return map[int]string{1: "I", 2: "II", 3: "III"}[l] }

func mmss(d time.Duration) string {
	s := int(max(0, d.Round(time.Second)/time.Second))
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// dateLayout is how each language writes a moment: Romanian day first
// with dots (06.12.2026 14:05), English the ISO order.
var dateLayout = map[string]string{tickets.LangRomanian: "02.01.2006 15:04", tickets.LangEnglish: "2006-01-02 15:04"}

// when writes t in m's language ("—" for no time).
func (m *msgs) when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format(dateLayout[m.lang])
}

// number writes x with prec decimals in m's language: Romanian with a
// decimal comma and dots between thousands (1.234,5), English the other
// way round (1,234.5).
func (m *msgs) number(x float64, prec int) string {
	dec, group := ".", ","
	if m.lang == tickets.LangRomanian {
		dec, group = ",", "."
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	s := strconv.FormatFloat(math.Abs(x), 'f', prec, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if x < 0 && strings.Trim(s, "0.") != "" {
		b.WriteByte('-')
	}
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(group)
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteString(dec + frac)
	}
	return b.String()
}

// pct writes a share (0.125) as a percentage: "12,5 %" in Romanian (a
// no-break space before the sign), "12.5%" in English.
func (m *msgs) pct(x float64) string {
	if m.lang == tickets.LangRomanian {
		return m.number(100*x, 1) + "\u00a0%"
	}
	return m.number(100*x, 1) + "%"
}

// label names an enum value of the data (a status, a service, a
// priority, a channel, a role) in m's language; the data keeps the value.
func (m *msgs) label(v any) string {
	var id string
	switch v := v.(type) {
	case tickets.Status:
		id = "status." + string(v)
	case tickets.Service:
		if v == "" {
			return m.T("service.all")
		}
		id = "service." + string(v)
	case tickets.Priority:
		id = "priority." + string(v)
	case tickets.Channel:
		id = "channel." + string(v)
	case tickets.Role:
		id = "role." + string(v)
	}
	if id != "" && m.has(id) {
		return m.T(id)
	}
	return fmt.Sprint(v)
}

// funcsFor returns the template functions of one language.
func funcsFor(m *msgs) template.FuncMap {
	f := template.FuncMap{
		"t":    m.T,
		"lang": func() string { return m.lang },
		"when": m.when,
		"whenp": func(t *time.Time) string {
			if t == nil {
				return "—"
			}
			return m.when(*t)
		},
		"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
		"num":   func(n int) string { return m.number(float64(n), 0) },
		"pct":   m.pct,
		"hours": func(d time.Duration) string { return m.T("fmt.hours", m.number(d.Hours(), 1)) },
		"ms": func(d time.Duration) string {
			return m.T("fmt.ms", m.number(float64(d)/float64(time.Millisecond), 1))
		},
		"avg": func(x float64) string {
			if x == 0 {
				return "—"
			}
			return m.number(x, 2)
		},
		"label": m.label,
		"speaker": func(s string) string {
			if m.has("speaker." + s) {
				return m.T("speaker." + s)
			}
			return s
		},
		"langname": func(code string) string {
			if m.has("lang." + code) {
				return m.T("lang." + code)
			}
			return code
		},
		"jsmsgs": m.js,
	}
	for k, v := range funcs {
		f[k] = v
	}
	return f
}
