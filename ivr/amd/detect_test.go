package amd_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/ivr/amd"
)

// script is a far end that sends loud (a 440 Hz tone at about -12 dBFS)
// or quiet runs of frames, at once (no clock), then nothing until ctx ends.
type script struct {
	runs []run
	i, n int // the run and the frame within it
}

type run struct {
	loud bool
	d    time.Duration
}

func (s *script) ReadFrame(ctx context.Context, dst []int16) (int, error) {
	for s.i < len(s.runs) && s.n >= int(s.runs[s.i].d/amd.FrameDuration) {
		s.i, s.n = s.i+1, 0
	}
	if s.i == len(s.runs) {
		<-ctx.Done()
		return 0, context.Cause(ctx)
	}
	r := s.runs[s.i]
	for k := range dst {
		dst[k] = 0
		if r.loud {
			dst[k] = int16(8000 * math.Sin(2*math.Pi*440*float64(s.n*len(dst)+k)/8000))
		}
	}
	s.n++
	return len(dst), nil
}

// TestDetect: Detect on frames read from a far end, loudness alone (no
// voice activity detector): a long sound is a machine, a short one then
// silence a person, a far end that sends nothing a person after Silence,
// a call that ends while listening its cause.
func TestDetect(t *testing.T) {
	on := amd.Config{Enabled: true}
	for _, tc := range []struct {
		name string
		runs []run
		want amd.Verdict
		why  string
	}{
		{"greeting", []run{{false, 200 * time.Millisecond}, {true, 10 * time.Second}}, amd.Machine, "a greeting of 2.5s (2.5s of it speech)"},
		{"alo", []run{{false, 300 * time.Millisecond}, {true, 400 * time.Millisecond}, {false, 10 * time.Second}}, amd.Human, "a greeting of 400ms, then 800ms of silence"},
		{"nothing sent", nil, amd.Human, "silence for 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := amd.Detect(context.Background(), &script{runs: tc.runs}, 8000, on, nil, nil)
			if err != nil || r.Verdict != tc.want || !strings.Contains(r.Why, tc.why) {
				t.Errorf("Detect: %v (%v), want %s: %q", r, err, tc.want, tc.why)
			}
			if !strings.HasPrefix(r.String(), tc.want.String()+": ") {
				t.Errorf("event detail %q", r.String())
			}
		})
	}
	t.Run("hung up", func(t *testing.T) {
		hung := errors.New("the citizen hung up")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(300*time.Millisecond, func() { cancel(hung) })
		if _, err := amd.Detect(ctx, &script{}, 16000, on, nil, nil); !errors.Is(err, hung) {
			t.Errorf("Detect on a call that ended: %v, want its cause", err)
		}
	})
}
