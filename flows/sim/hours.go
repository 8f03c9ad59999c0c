package sim

import (
	"time"
	_ "time/tzdata" // Europe/Bucharest without the system's zone files

	"github.com/govline/ivr/flows"
)

// Hours is a weekly schedule of the operators with holidays: open From to
// To (hours of the day, local time in Loc) on the weekdays in Days, except
// on Holidays ("2026-12-25"). It stands in for the ticket store's calendar
// in the simulator and the tests.
type Hours struct {
	Loc      *time.Location
	Days     []time.Weekday
	From, To int // hours, 0..24
	Holidays []string
}

var _ flows.Calendar = Hours{}

// DefaultHours is the line's schedule: Monday to Friday, 8 to 20,
// Bucharest time, with the Romanian public holidays of 2026 and 2027 that
// fall on weekdays.
func DefaultHours() Hours {
	loc, err := time.LoadLocation("Europe/Bucharest")
	if err != nil {
		loc = time.UTC
	}
	return Hours{Loc: loc, Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
		From: 8, To: 20,
		Holidays: []string{"2026-01-01", "2026-01-02", "2026-01-06", "2026-01-07", "2026-01-24", "2026-04-10", "2026-04-13",
			"2026-05-01", "2026-06-01", "2026-08-15", "2026-11-30", "2026-12-01", "2026-12-25",
			"2027-01-01", "2027-01-06", "2027-01-07", "2027-04-30", "2027-05-03"}}
}

// HoursText is how the flows say DefaultHours.
var HoursText = map[string]string{
	"ro": "Operatorii sunt disponibili de luni până vineri, între orele 8 și 20",
	"en": "Our operators are available Monday to Friday, from 8 am to 8 pm",
}

// Open reports whether the operators work at t.
func (h Hours) Open(t time.Time) bool {
	t = t.In(h.loc())
	if h.holiday(t) {
		return false
	}
	day := false
	for _, d := range h.Days {
		if t.Weekday() == d {
			day = true
		}
	}
	return day && t.Hour() >= h.From && t.Hour() < h.To
}

// NextOpen returns the next time the operators start work after t (t
// itself when open).
func (h Hours) NextOpen(t time.Time) time.Time {
	if h.Open(t) {
		return t
	}
	t = t.In(h.loc())
	for i := 0; i < 24*21; i++ { // three weeks of hours
		t = t.Truncate(time.Hour).Add(time.Hour)
		if h.Open(t) {
			return t
		}
	}
	return time.Time{}
}

func (h Hours) loc() *time.Location {
	if h.Loc == nil {
		return time.UTC
	}
	return h.Loc
}

func (h Hours) holiday(t time.Time) bool {
	d := t.Format("2006-01-02")
	for _, x := range h.Holidays {
		if x == d {
			return true
		}
	}
	return false
}
