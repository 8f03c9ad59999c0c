package console

import (
	"fmt"
	"html/template"
	"time"

	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/tickets"

	"github.com/govline/ivr/redact"
)

var funcs = template.FuncMap{
	// unsure: a spoken answer below the confidence at which the flows
	// confirm it (speech.ConfirmBelow, flows.DefaultConfirmBelow).
	"unsure": func(t tickets.Turn) bool { return t.Mode == tickets.ModeSpeech && t.Confidence < speech.ConfirmBelow },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04")
	},
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	"whenp": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04")
	},
	"pct":   func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) },
	"hours": func(d time.Duration) string { return fmt.Sprintf("%.1f h", d.Hours()) },
	"avg": func(x float64) string {
		if x == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", x)
	},
	"overdue": func(t tickets.Ticket) bool {
		return t.Resolved == nil && t.Status != tickets.StatusClosed && time.Now().After(t.Deadline)
	},
	"label": func(s any) string {
		switch v := s.(type) {
		case tickets.Status:
			return map[tickets.Status]string{tickets.StatusNew: "new", tickets.StatusInProgress: "in progress",
				tickets.StatusEscalated: "escalated", tickets.StatusWaiting: "waiting for citizen",
				tickets.StatusResolved: "resolved", tickets.StatusClosed: "closed"}[v]
		case tickets.Service:
			return map[tickets.Service]string{tickets.ServiceIdentityCard: "identity card", tickets.ServicePassport: "passport",
				tickets.ServicePortalAccount: "portal account", tickets.ServiceOnlineRequest: "online request",
				tickets.ServiceRequestStatus: "request status", tickets.ServiceDrivingLicence: "driving licence",
				tickets.ServiceSupport: "support service", tickets.ServiceOther: "other", "": "all services"}[v]
		}
		return fmt.Sprint(s)
	},
	"roman":  func(l int) string { return map[int]string{1: "I", 2: "II", 3: "III"}[l] },
	"masked": redact.Mask,
	"eq2":    func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
}
