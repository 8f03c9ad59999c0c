package tickets

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeadlineConfig is the plain form of the deadline table, as read from the
// configuration file: working durations per priority, with overrides per
// service. A duration is "4h", "90m", "1d" or "2d4h", where "d" is one
// working day (the calendar's longest opening day, 12 h by default).
// Missing entries take the defaults (DefaultDeadlines).
type DeadlineConfig struct {
	// Default maps a priority (low, normal, high, urgent) to its duration
	// for every service.
	Default map[string]string `toml:"default" json:"default"`
	// Services maps a service to priority overrides.
	Services map[string]map[string]string `toml:"services" json:"services"`
}

// DefaultDeadlines returns the default durations by priority: urgent 4
// working hours, high 1 working day, normal 3, low 5.
func DefaultDeadlines() map[string]string {
	return map[string]string{"urgent": "4h", "high": "1d", "normal": "3d", "low": "5d"}
}

// Deadlines is the table service x priority -> working duration, with the
// calendar it is counted in. Immutable and safe for concurrent use.
type Deadlines struct {
	cal   *Calendar
	table map[Service]map[Priority]time.Duration
}

// NewDeadlines builds the deadline table of c counted in cal's working
// time (DefaultCalendar when nil). An error names the bad field
// (deadlines.default.high, deadlines.services.passport.low).
func NewDeadlines(c DeadlineConfig, cal *Calendar) (*Deadlines, error) {
	if cal == nil {
		cal = DefaultCalendar()
	}
	base := map[Priority]time.Duration{}
	defaults := DefaultDeadlines()
	for p, v := range c.Default {
		if !slices.Contains(Priorities, Priority(p)) {
			return nil, fmt.Errorf("deadlines.default.%s: unknown priority, want one of %v", p, Priorities)
		}
		defaults[p] = v
	}
	for _, p := range Priorities {
		d, err := parseWorking(defaults[string(p)], cal.WorkingDay())
		if err != nil {
			return nil, fmt.Errorf("deadlines.default.%s: %w", p, err)
		}
		base[p] = d
	}
	dl := &Deadlines{cal: cal, table: map[Service]map[Priority]time.Duration{}}
	for svc := range c.Services {
		if !slices.Contains(Services, Service(svc)) {
			return nil, fmt.Errorf("deadlines.services.%s: unknown service, want one of %v", svc, Services)
		}
	}
	for _, svc := range Services {
		row := map[Priority]time.Duration{}
		for p, d := range base {
			row[p] = d
		}
		for p, v := range c.Services[string(svc)] {
			if !slices.Contains(Priorities, Priority(p)) {
				return nil, fmt.Errorf("deadlines.services.%s.%s: unknown priority, want one of %v", svc, p, Priorities)
			}
			d, err := parseWorking(v, cal.WorkingDay())
			if err != nil {
				return nil, fmt.Errorf("deadlines.services.%s.%s: %w", svc, p, err)
			}
			row[Priority(p)] = d
		}
		dl.table[svc] = row
	}
	return dl, nil
}

// Calendar returns the calendar the table counts in.
func (dl *Deadlines) Calendar() *Calendar { return dl.cal }

// Duration returns the working duration allowed for svc at priority p.
func (dl *Deadlines) Duration(svc Service, p Priority) time.Duration {
	return dl.table[svc][p]
}

// Deadline returns the deadline of a ticket of svc at priority p opened at
// created: created plus the table's duration in working time.
func (dl *Deadlines) Deadline(created time.Time, svc Service, p Priority) time.Time {
	return dl.cal.AddWorking(created, dl.Duration(svc, p))
}

// maxDeadlineDays bounds a deadline (a year of working days): a typo such
// as "3000d" is an error, not a deadline in the next decade.
const maxDeadlineDays = 366

// parseWorking reads "4h", "90m", "1d", "2d4h30m": d is one working day.
func parseWorking(s string, day time.Duration) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration, want e.g. 4h or 3d")
	}
	var days int
	rest := s
	if before, after, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(before)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a duration like 4h, 3d or 1d4h", s)
		}
		if n > maxDeadlineDays {
			return 0, fmt.Errorf("%q: more than %d working days", s, maxDeadlineDays)
		}
		days, rest = n, after
	}
	var d time.Duration
	if rest != "" {
		var err error
		d, err = time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%q: want a duration like 4h, 3d or 1d4h", s)
		}
		if d > maxDeadlineDays*day {
			return 0, fmt.Errorf("%q: more than %d working days", s, maxDeadlineDays)
		}
	}
	d += time.Duration(days) * day
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be more than zero", s)
	}
	return d, nil
}
