package flows

import (
	"log/slog"
	"time"
)

// Services are what a flow may use besides its Channel. Any may be nil: the
// API functions that need a missing service fail with a clear error.
type Services struct {
	KB         Knowledge
	Desk       Desk
	Transcript Transcript
	Calendar   Calendar
	Log        *slog.Logger
	Now        func() time.Time
	HoursText  map[string]string // lang -> "Monday to Friday, 8 to 20"
}
