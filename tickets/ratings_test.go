package tickets

import (
	"context"
	"testing"
	"time"
)

// The roll-up and the scan agree with hand-computed ratings, for aligned
// and unaligned periods, after a correction of a rating and a change of
// service.
func TestRatingsReport(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	base := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	now := base
	s.SetClock(func() time.Time { return now })
	open := func(at time.Time, svc Service, rating int) string {
		now = at
		tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		if rating > 0 {
			if err := s.Rate(ctx, tk.Number, "ivr", rating); err != nil {
				t.Fatal(err)
			}
		}
		return tk.Number
	}
	open(base, ServicePassport, 5)                     // 09:30
	open(base.Add(20*time.Minute), ServicePassport, 2) // 09:50
	p3 := open(base.Add(2*time.Hour), ServicePassport, 4)
	open(base.Add(3*time.Hour), ServiceIdentityCard, 3)
	open(base.Add(3*time.Hour), ServiceIdentityCard, 0) // not rated
	if err := s.Classify(ctx, p3, "ana", ServiceOther, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		n        map[Service]int
		avg      float64
	}{
		{"day", base.Add(-9 * time.Hour), base.Add(14 * time.Hour), map[Service]int{ServicePassport: 2, ServiceOther: 1, ServiceIdentityCard: 1}, 14.0 / 4},
		{"unaligned", base.Add(10 * time.Minute), base.Add(3*time.Hour + time.Minute), map[Service]int{ServicePassport: 1, ServiceOther: 1, ServiceIdentityCard: 1}, 9.0 / 3},
		{"inside an hour", base.Add(10 * time.Minute), base.Add(25 * time.Minute), map[Service]int{ServicePassport: 1}, 2},
	} {
		for _, rollup := range []bool{true, false} {
			tot, per, err := s.ratings(ctx, "", tc.from, tc.to, rollup)
			if err != nil {
				t.Fatal(err)
			}
			count := 0
			for _, r := range per {
				if r.Count != tc.n[r.Service] {
					t.Errorf("%s rollup=%v: %s count %d, want %d", tc.name, rollup, r.Service, r.Count, tc.n[r.Service])
				}
				count += r.Count
			}
			if tot.Count != count || tot.Average != tc.avg {
				t.Errorf("%s rollup=%v: total %+v, want average %v", tc.name, rollup, tot, tc.avg)
			}
		}
	}
}
