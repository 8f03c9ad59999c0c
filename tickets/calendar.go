package tickets

import (
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // the calendar's time zone works on hosts without tzdata
)

// Calendar holds the working hours of the human operators: a time zone,
// opening hours per weekday and holidays. Deadlines are counted in its
// working time, and the flows ask it whether operators answer now.
//
// A Calendar is immutable after NewCalendar and safe for concurrent use.
type Calendar struct {
	loc      *time.Location
	hours    [7][]span // by time.Weekday; minutes from local midnight
	holidays map[date]bool
	day      time.Duration // longest opening day: the length of "1d"
}

// span is an opening interval [from, to) in minutes after local midnight.
type span struct{ from, to int }

type date struct {
	y int
	m time.Month
	d int
}

func dateOf(t time.Time) date {
	y, m, d := t.Date()
	return date{y, m, d}
}

// CalendarConfig is the plain form of a calendar, as read from the
// configuration file. The zero value gives the defaults.
type CalendarConfig struct {
	// TimeZone is an IANA zone name; "" means DefaultTimeZone.
	TimeZone string `toml:"time_zone" json:"time_zone"`
	// Hours maps a weekday ("mon".."sun") to its opening hours,
	// "HH:MM-HH:MM", several separated by commas ("08:00-12:00,13:00-17:00"),
	// or "" (closed). A nil map means DefaultHours; days missing from a
	// non-nil map are closed. "24:00" ends a day.
	Hours map[string]string `toml:"hours" json:"hours"`
	// Holidays are closed dates, "YYYY-MM-DD", in the calendar's zone. Nil
	// means DefaultHolidays; an empty non-nil list means none.
	Holidays []string `toml:"holidays" json:"holidays"`
}

// DefaultTimeZone is the zone of the service.
const DefaultTimeZone = "Europe/Bucharest"

// DefaultHours returns the default opening hours: Monday to Friday,
// 08:00 to 20:00.
func DefaultHours() map[string]string {
	return map[string]string{
		"mon": "08:00-20:00", "tue": "08:00-20:00", "wed": "08:00-20:00",
		"thu": "08:00-20:00", "fri": "08:00-20:00",
	}
}

// DefaultHolidays returns the Romanian public holidays (Codul muncii, art.
// 139) of 2026 and 2027.
//
// A SAMPLE LIST: the service owner maintains the real one in the
// configuration (calendar holidays), adding each year and any day the
// government declares free.
func DefaultHolidays() []string {
	return []string{
		// 2026 (Orthodox Easter 12 April, Pentecost 31 May)
		"2026-01-01", "2026-01-02", // New Year
		"2026-01-06", "2026-01-07", // Epiphany, Saint John
		"2026-01-24",                             // Union Day
		"2026-04-10", "2026-04-12", "2026-04-13", // Good Friday, Easter, Easter Monday
		"2026-05-01",               // Labour Day
		"2026-05-31", "2026-06-01", // Pentecost, Whit Monday and Children's Day
		"2026-08-15",               // Dormition
		"2026-11-30",               // Saint Andrew
		"2026-12-01",               // National Day
		"2026-12-25", "2026-12-26", // Christmas
		// 2027 (Orthodox Easter 2 May, Pentecost 20 June)
		"2027-01-01", "2027-01-02",
		"2027-01-06", "2027-01-07",
		"2027-01-24",
		"2027-04-30", "2027-05-02", "2027-05-03", // Good Friday, Easter, Easter Monday
		"2027-05-01",
		"2027-06-01",               // Children's Day
		"2027-06-20", "2027-06-21", // Pentecost, Whit Monday
		"2027-08-15",
		"2027-11-30",
		"2027-12-01",
		"2027-12-25", "2027-12-26",
	}
}

var weekdayKeys = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// NewCalendar builds a calendar from c. An error names the bad field
// (time_zone, hours.mon, holidays[3]).
func NewCalendar(c CalendarConfig) (*Calendar, error) {
	tz := c.TimeZone
	if tz == "" {
		tz = DefaultTimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("calendar: time_zone: %q is not an IANA time zone (e.g. Europe/Bucharest)", tz)
	}
	cal := &Calendar{loc: loc, holidays: map[date]bool{}}
	hours := c.Hours
	if hours == nil {
		hours = DefaultHours()
	}
	for key := range hours {
		if !slices.Contains(weekdayKeys[:], key) {
			return nil, fmt.Errorf("calendar: hours.%s: unknown weekday, want one of mon tue wed thu fri sat sun", key)
		}
	}
	open := false
	for wd, key := range weekdayKeys {
		spans, err := parseSpans(hours[key])
		if err != nil {
			return nil, fmt.Errorf("calendar: hours.%s: %w", key, err)
		}
		cal.hours[wd] = spans
		var total time.Duration
		for _, s := range spans {
			total += time.Duration(s.to-s.from) * time.Minute
		}
		cal.day = max(cal.day, total)
		open = open || len(spans) > 0
	}
	if !open {
		return nil, fmt.Errorf("calendar: hours: closed every day; give at least one weekday opening hours")
	}
	hol := c.Holidays
	if hol == nil {
		hol = DefaultHolidays()
	}
	for i, h := range hol {
		d, err := time.ParseInLocation(time.DateOnly, strings.TrimSpace(h), loc)
		if err != nil {
			return nil, fmt.Errorf("calendar: holidays[%d]: %q: want a date YYYY-MM-DD", i, h)
		}
		cal.holidays[dateOf(d)] = true
	}
	return cal, nil
}

// DefaultCalendar returns the calendar of the zero CalendarConfig.
func DefaultCalendar() *Calendar {
	c, err := NewCalendar(CalendarConfig{})
	if err != nil {
		panic("tickets: default calendar: " + err.Error()) // the defaults are constants
	}
	return c
}

// parseSpans reads "HH:MM-HH:MM[,HH:MM-HH:MM...]" ("" is closed).
func parseSpans(s string) ([]span, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []span
	for part := range strings.SplitSeq(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			return nil, fmt.Errorf("%q: want HH:MM-HH:MM", part)
		}
		f, err1 := parseClock(from)
		t, err2 := parseClock(to)
		if err := cmpErr(err1, err2); err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if t <= f {
			return nil, fmt.Errorf("%q: the end must be after the start", part)
		}
		if len(out) > 0 && f < out[len(out)-1].to {
			return nil, fmt.Errorf("%q: overlaps or precedes the previous interval; list them in order", part)
		}
		out = append(out, span{f, t})
	}
	return out, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// parseClock reads "HH:MM" (00:00 to 24:00) as minutes after midnight.
func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	if h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: out of range 00:00..24:00", s)
	}
	return h*60 + m, nil
}

// Location returns the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// WorkingDay is the length of the longest opening day: what "1d" means in
// deadline durations.
func (c *Calendar) WorkingDay() time.Duration { return c.day }

// at returns the instant of minute minute after local midnight of day d.
// time.Date normalizes wall times that DST skips or repeats.
func (c *Calendar) at(d date, minute int) time.Time {
	return time.Date(d.y, d.m, d.d, 0, minute, 0, 0, c.loc)
}

// spansOn returns the opening intervals of the local day d, as instants.
func (c *Calendar) spansOn(d date) [][2]time.Time {
	if c.holidays[d] {
		return nil
	}
	wd := time.Date(d.y, d.m, d.d, 12, 0, 0, 0, c.loc).Weekday()
	var out [][2]time.Time
	for _, s := range c.hours[wd] {
		out = append(out, [2]time.Time{c.at(d, s.from), c.at(d, s.to)})
	}
	return out
}

// maxScanDays bounds the search for the next opening (a calendar open one
// weekday a year still finds it).
const maxScanDays = 800

// Open reports whether the operators work at t.
func (c *Calendar) Open(t time.Time) bool {
	for _, s := range c.spansOn(dateOf(t.In(c.loc))) {
		if !t.Before(s[0]) && t.Before(s[1]) {
			return true
		}
	}
	return false
}

// next returns the opening interval that contains t or, if none does, the
// next one after t. ok is false if none starts within maxScanDays.
func (c *Calendar) next(t time.Time) (from, to time.Time, ok bool) {
	day := dateOf(t.In(c.loc))
	for range maxScanDays {
		for _, s := range c.spansOn(day) {
			if t.Before(s[1]) {
				if t.After(s[0]) {
					return t, s[1], true
				}
				return s[0], s[1], true
			}
		}
		n := time.Date(day.y, day.m, day.d+1, 12, 0, 0, 0, c.loc)
		day = dateOf(n)
	}
	return time.Time{}, time.Time{}, false
}

// NextOpen returns t if the operators work at t, else the next instant
// they start; the zero time if the calendar has no opening in the next
// maxScanDays days (every day a holiday).
func (c *Calendar) NextOpen(t time.Time) time.Time {
	from, _, ok := c.next(t)
	if !ok {
		return time.Time{}
	}
	return from
}

// AddWorking returns the instant when d of working time has passed after
// t: nights, weekends and holidays do not count. Working time is real
// elapsed time inside the opening hours, so a DST change inside an opening
// interval counts as it is lived. AddWorking(t, 0) is t; a negative d
// counts as 0. The zero time if the calendar runs out (see NextOpen).
func (c *Calendar) AddWorking(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t
	}
	for {
		from, to, ok := c.next(t)
		if !ok {
			return time.Time{}
		}
		if avail := to.Sub(from); d <= avail {
			return from.Add(d)
		} else {
			d -= avail
		}
		t = to
	}
}

// WorkingBetween returns the working time between a and b (0 if b is not
// after a).
func (c *Calendar) WorkingBetween(a, b time.Time) time.Duration {
	var sum time.Duration
	for a.Before(b) {
		from, to, ok := c.next(a)
		if !ok || !from.Before(b) {
			break
		}
		sum += earlier(to, b).Sub(from)
		a = to
	}
	return sum
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
