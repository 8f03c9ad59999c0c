package amd

import (
	"strings"
	"testing"
	"time"
)

// seq is a script of speech decisions: runs of d of speech (true) or not.
type seq []struct {
	speech bool
	d      time.Duration
}

// TestAMDDetectorDecisions: the detector's verdict and the frame it comes
// at, on scripted frame decisions (no clock, no audio).
func TestAMDDetectorDecisions(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		script seq
		want   Verdict
		at     time.Duration // when the verdict comes, from the answer
		why    string
	}{
		{"alo then silence", seq{{false, 300 * ms}, {true, 400 * ms}, {false, 3 * time.Second}}, Human, 1500 * ms, "then 800ms of silence"},
		{"alo alo", seq{{true, 400 * ms}, {false, 500 * ms}, {true, 400 * ms}, {false, 3 * time.Second}}, Human, 2100 * ms, "a greeting of 1.3s"},
		{"long greeting", seq{{false, 500 * ms}, {true, 6 * time.Second}}, Machine, 3000 * ms, "without a pause"},
		{"greeting with short pauses", seq{{true, 900 * ms}, {false, 400 * ms}, {true, 900 * ms}, {false, 400 * ms}, {true, 3 * time.Second}}, Machine, 2620 * ms, "a greeting of 2.62s"}, // the first speech frame past 2.5 s
		{"silence", seq{{false, 10 * time.Second}}, Human, 2 * time.Second, "silence for 2s"},
		{"clicks", seq{{true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms},
			{true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}}, Human, 5 * time.Second, "undecided after 5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDetector(Config{Enabled: true})
			n := 0
			for _, run := range tc.script {
				for range int(run.d / FrameDuration) {
					n++
					if v := d.Push(run.speech); v != Listening {
						if v != tc.want || Frames(n) != tc.at || !strings.Contains(d.Why(), tc.why) {
							t.Errorf("%s at %s (%s), want %s at %s (%q)", v, Frames(n), d.Why(), tc.want, tc.at, tc.why)
						}
						return
					}
				}
			}
			t.Errorf("no verdict after %s, want %s at %s", Frames(n), tc.want, tc.at)
		})
	}
}
