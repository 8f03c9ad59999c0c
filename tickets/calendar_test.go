package tickets

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCalendarOpen(t *testing.T) {
	cal := DefaultCalendar()
	for _, c := range []struct {
		at   time.Time
		open bool
	}{
		{local(2026, 3, 2, 7, 59), false}, // Monday before opening
		{local(2026, 3, 2, 8, 0), true},   // opening minute
		{local(2026, 3, 2, 19, 59), true},
		{local(2026, 3, 2, 20, 0), false},  // closing is exclusive
		{local(2026, 3, 7, 12, 0), false},  // Saturday
		{local(2026, 3, 8, 12, 0), false},  // Sunday
		{local(2026, 1, 1, 12, 0), false},  // New Year (Thursday)
		{local(2026, 4, 10, 12, 0), false}, // Orthodox Good Friday
		{local(2026, 4, 13, 12, 0), false}, // Easter Monday
		{local(2026, 4, 14, 12, 0), true},
		{local(2027, 12, 1, 12, 0), false}, // National Day
		// 06:00 UTC is 08:00 in Bucharest in winter (UTC+2): open.
		{time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 3, 2, 5, 59, 0, 0, time.UTC), false},
		// Summer (UTC+3): 05:00 UTC is 08:00.
		{time.Date(2026, 7, 1, 5, 0, 0, 0, time.UTC), true},
	} {
		if got := cal.Open(c.at); got != c.open {
			t.Errorf("Open(%s) = %v, want %v", c.at.In(bucharest), got, c.open)
		}
	}
}

func TestCalendarNextOpen(t *testing.T) {
	cal := DefaultCalendar()
	for _, c := range []struct{ at, want time.Time }{
		{local(2026, 3, 2, 10, 0), local(2026, 3, 2, 10, 0)},  // open now
		{local(2026, 3, 2, 6, 0), local(2026, 3, 2, 8, 0)},    // early morning
		{local(2026, 3, 2, 20, 0), local(2026, 3, 3, 8, 0)},   // after closing
		{local(2026, 3, 6, 21, 0), local(2026, 3, 9, 8, 0)},   // Friday night -> Monday
		{local(2026, 4, 9, 20, 30), local(2026, 4, 14, 8, 0)}, // Thursday before Easter -> Tuesday
		{local(2026, 12, 24, 20, 0), local(2026, 12, 28, 8, 0)},
		{local(2026, 12, 31, 20, 0), local(2027, 1, 4, 8, 0)}, // 1, 2 Jan holidays, then the weekend
	} {
		if got := cal.NextOpen(c.at); !got.Equal(c.want) {
			t.Errorf("NextOpen(%s) = %s, want %s", c.at.In(bucharest), got.In(bucharest), c.want)
		}
	}
}

func TestCalendarAddWorking(t *testing.T) {
	cal := DefaultCalendar()
	h := time.Hour
	for _, c := range []struct {
		at   time.Time
		d    time.Duration
		want time.Time
	}{
		{local(2026, 3, 2, 10, 0), 4 * h, local(2026, 3, 2, 14, 0)},
		{local(2026, 3, 2, 10, 0), 10 * h, local(2026, 3, 2, 20, 0)}, // ends exactly at closing
		{local(2026, 3, 2, 18, 0), 4 * h, local(2026, 3, 3, 10, 0)},  // across the night
		{local(2026, 3, 6, 18, 0), 4 * h, local(2026, 3, 9, 10, 0)},  // across the weekend
		{local(2026, 3, 7, 11, 0), 1 * h, local(2026, 3, 9, 9, 0)},   // opened on Saturday
		{local(2026, 4, 9, 18, 0), 4 * h, local(2026, 4, 14, 10, 0)}, // Easter: Fri and Mon holidays
		{local(2026, 3, 2, 10, 0), 0, local(2026, 3, 2, 10, 0)},
		// 12 h = 1 working day: same time next working day.
		{local(2026, 3, 27, 15, 0), 12 * h, local(2026, 3, 30, 15, 0)},   // across the DST weekend (29 March)
		{local(2026, 10, 23, 9, 30), 24 * h, local(2026, 10, 27, 9, 30)}, // across the end of DST (25 Oct)
		{local(2026, 3, 2, 10, 0), 36 * h, local(2026, 3, 5, 10, 0)},
	} {
		if got := cal.AddWorking(c.at, c.d); !got.Equal(c.want) {
			t.Errorf("AddWorking(%s, %s) = %s, want %s", c.at.In(bucharest), c.d, got.In(bucharest), c.want)
		}
		if c.d > 0 {
			if got := cal.WorkingBetween(c.at, c.want); got != c.d {
				t.Errorf("WorkingBetween(%s, %s) = %s, want %s", c.at.In(bucharest), c.want, got, c.d)
			}
		}
	}

	// A line open around the clock on the DST change days: the day of the
	// spring change has 23 real hours, the autumn one 25.
	all, err := NewCalendar(CalendarConfig{Hours: map[string]string{"sun": "00:00-24:00", "mon": "00:00-24:00"}, Holidays: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := all.AddWorking(local(2026, 3, 29, 0, 0), 24*h); !got.Equal(local(2026, 3, 30, 1, 0)) {
		t.Errorf("spring DST day: %s", got.In(bucharest))
	}
	if got := all.AddWorking(local(2026, 10, 25, 0, 0), 24*h); !got.Equal(local(2026, 10, 25, 23, 0)) {
		t.Errorf("autumn DST day: %s", got.In(bucharest))
	}
	// Split hours with a lunch break.
	split, err := NewCalendar(CalendarConfig{Hours: map[string]string{"mon": "08:00-12:00, 13:00-17:00"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := split.AddWorking(local(2026, 3, 2, 11, 0), 2*h); !got.Equal(local(2026, 3, 2, 14, 0)) {
		t.Errorf("across lunch: %s", got.In(bucharest))
	}
	if split.Open(local(2026, 3, 2, 12, 30)) || split.WorkingDay() != 8*h {
		t.Error("lunch break open, or working day not 8 h")
	}
	if got := split.NextOpen(local(2026, 3, 2, 17, 0)); !got.Equal(local(2026, 3, 9, 8, 0)) {
		t.Errorf("Monday-only line: next open %s", got.In(bucharest))
	}
}

func TestCalendarConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  CalendarConfig
		want string
	}{
		{CalendarConfig{TimeZone: "Europe/Bucuresti"}, "time_zone"},
		{CalendarConfig{Hours: map[string]string{"monday": "08:00-20:00"}}, "hours.monday"},
		{CalendarConfig{Hours: map[string]string{"mon": "8-20"}}, "hours.mon"},
		{CalendarConfig{Hours: map[string]string{"tue": "20:00-08:00"}}, "hours.tue"},
		{CalendarConfig{Hours: map[string]string{"wed": "08:00-25:00"}}, "hours.wed"},
		{CalendarConfig{Hours: map[string]string{"thu": "08:00-12:00,11:00-13:00"}}, "hours.thu"},
		{CalendarConfig{Hours: map[string]string{}}, "hours"},
		{CalendarConfig{Holidays: []string{"2026-01-01", "2026-13-01"}}, "holidays[1]"},
	} {
		_, err := NewCalendar(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want+":") {
			t.Errorf("NewCalendar(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	if _, err := NewCalendar(CalendarConfig{TimeZone: "UTC", Hours: map[string]string{"sat": "09:00-13:00"}, Holidays: []string{}}); err != nil {
		t.Fatal(err)
	}
}

// orthodoxEaster returns the Orthodox Easter Sunday of year y (Meeus'
// Julian algorithm, shifted by the 13 days between the calendars in
// 1900-2099).
func orthodoxEaster(y int) time.Time {
	a, b, c := y%4, y%7, y%19
	d := (19*c + 15) % 30
	e := (2*a + 4*b - d + 34) % 7
	month := (d + e + 114) / 31
	day := (d+e+114)%31 + 1
	return time.Date(y, time.Month(month), day+13, 0, 0, 0, 0, time.UTC)
}

func TestDefaultHolidaysMovableFeasts(t *testing.T) {
	hol := DefaultHolidays()
	for _, y := range []int{2026, 2027} {
		e := orthodoxEaster(y)
		for _, off := range []int{-2, 0, 1, 49, 50} { // Good Friday, Easter, Monday, Pentecost, Whit Monday
			d := e.AddDate(0, 0, off).Format(time.DateOnly)
			if !slices.Contains(hol, d) {
				t.Errorf("%d: %s (Easter %+d) missing from the default holidays", y, d, off)
			}
		}
		for _, md := range []string{"01-01", "01-02", "01-06", "01-07", "01-24", "05-01", "06-01", "08-15", "11-30", "12-01", "12-25", "12-26"} {
			if d := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).Format("2006") + "-" + md; !slices.Contains(hol, d) {
				t.Errorf("%s missing from the default holidays", d)
			}
		}
	}
}

func TestDeadlines(t *testing.T) {
	cal := DefaultCalendar()
	dl, err := NewDeadlines(DeadlineConfig{
		Default:  map[string]string{"low": "10d"},
		Services: map[string]map[string]string{"passport": {"urgent": "2h", "normal": "1d6h"}},
	}, cal)
	if err != nil {
		t.Fatal(err)
	}
	h := time.Hour
	for _, c := range []struct {
		svc  Service
		p    Priority
		want time.Duration
	}{
		{ServiceIdentityCard, PriorityUrgent, 4 * h},
		{ServiceIdentityCard, PriorityHigh, 12 * h},
		{ServiceIdentityCard, PriorityNormal, 36 * h},
		{ServiceIdentityCard, PriorityLow, 120 * h},
		{ServicePassport, PriorityUrgent, 2 * h},
		{ServicePassport, PriorityNormal, 18 * h},
		{ServicePassport, PriorityHigh, 12 * h},
	} {
		if got := dl.Duration(c.svc, c.p); got != c.want {
			t.Errorf("%s/%s = %s, want %s", c.svc, c.p, got, c.want)
		}
	}
	// Friday 18:00 + 1 working day (high) = Monday 18:00.
	if got := dl.Deadline(local(2026, 3, 6, 18, 0), ServiceOther, PriorityHigh); !got.Equal(local(2026, 3, 9, 18, 0)) {
		t.Errorf("high from Friday evening: %s", got.In(bucharest))
	}
	for _, c := range []struct {
		cfg  DeadlineConfig
		want string
	}{
		{DeadlineConfig{Default: map[string]string{"asap": "1h"}}, "deadlines.default.asap"},
		{DeadlineConfig{Default: map[string]string{"high": "soon"}}, "deadlines.default.high"},
		{DeadlineConfig{Default: map[string]string{"high": "0h"}}, "deadlines.default.high"},
		{DeadlineConfig{Services: map[string]map[string]string{"passports": {"low": "1d"}}}, "deadlines.services.passports"},
		{DeadlineConfig{Services: map[string]map[string]string{"passport": {"low": "-1d"}}}, "deadlines.services.passport.low"},
	} {
		_, err := NewDeadlines(c.cfg, cal)
		if err == nil || !strings.Contains(err.Error(), c.want+":") {
			t.Errorf("NewDeadlines(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}

// TestDeadlineFollowsCorrections: a service corrected after a later
// priority change gives the deadline of the corrected service at the
// current priority.
func TestDeadlineFollowsCorrections(t *testing.T) {
	ctx := context.Background()
	s, c := clocked(t, local(2026, 3, 2, 10, 0))
	dl, err := NewDeadlines(DeadlineConfig{Services: map[string]map[string]string{"passport": {"urgent": "2h"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadlines(dl)
	tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr"})
	must(t, err)
	c.add(time.Minute)
	must(t, s.Classify(ctx, tk.Number, "ana", ServicePassport, "P1"))
	c.add(time.Minute)
	must(t, s.SetPriority(ctx, tk.Number, "ana", PriorityUrgent))
	got, _ := s.Ticket(ctx, tk.Number)
	if want := local(2026, 3, 2, 12, 0); !got.Deadline.Equal(want) { // passport urgent: 2 h from creation
		t.Fatalf("deadline %s, want %s", got.Deadline.In(bucharest), want)
	}
	h, _ := s.History(ctx, tk.Number)
	must(t, s.Correct(ctx, tk.Number, "sup", h[1].ID, Correction{Service: ServiceIdentityCard, Reason: "misclassified"}))
	got, _ = s.Ticket(ctx, tk.Number)
	if want := local(2026, 3, 2, 14, 0); got.Service != ServiceIdentityCard || got.Classification != "P1" || !got.Deadline.Equal(want) {
		t.Fatalf("after correction: %s %s deadline %s, want identity_card urgent %s", got.Service, got.Classification, got.Deadline.In(bucharest), want)
	}
	checkReplay(t, s, tk.Number)
}

// FuzzCalendarConfig: no configuration crashes NewCalendar, and a calendar
// it accepts answers Open, NextOpen and AddWorking consistently.
func FuzzCalendarConfig(f *testing.F) {
	f.Add("08:00-20:00", "09:00-12:00,13:00-17:00", "2026-01-01", int64(3600))
	f.Add("00:00-24:00", "", "2026-13-40", int64(1))
	f.Add("8-20", "24:00-24:00", "", int64(-5))
	f.Fuzz(func(t *testing.T, mon, sat, holiday string, secs int64) {
		cal, err := NewCalendar(CalendarConfig{Hours: map[string]string{"mon": mon, "sat": sat}, Holidays: []string{holiday}})
		if err != nil {
			return
		}
		start := local(2026, 3, 2, 7, 30)
		next := cal.NextOpen(start)
		if next.IsZero() || next.Before(start) || !cal.Open(next) {
			t.Fatalf("NextOpen(%s) = %s", start, next)
		}
		d := time.Duration(secs%(7*24*3600)) * time.Second
		end := cal.AddWorking(start, d)
		if d > 0 && (end.Before(start) || cal.WorkingBetween(start, end) != d) {
			t.Fatalf("AddWorking(%s, %s) = %s, WorkingBetween %s", start, d, end, cal.WorkingBetween(start, end))
		}
	})
}

// FuzzParseWorking: no duration string crashes it; accepted ones are
// positive.
func FuzzParseWorking(f *testing.F) {
	for _, s := range []string{"4h", "3d", "1d4h30m", "d", "-1d", "99999999999d", "1d-2h", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseWorking(s, 12*time.Hour)
		if err == nil && d <= 0 {
			t.Fatalf("parseWorking(%q) = %s, accepted", s, d)
		}
	})
}
