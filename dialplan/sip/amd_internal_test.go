package sip

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
		want   amdVerdict
		at     time.Duration // when the verdict comes, from the answer
		why    string
	}{
		{"alo then silence", seq{{false, 300 * ms}, {true, 400 * ms}, {false, 3 * time.Second}}, amdHuman, 1500 * ms, "then 800ms of silence"},
		{"alo alo", seq{{true, 400 * ms}, {false, 500 * ms}, {true, 400 * ms}, {false, 3 * time.Second}}, amdHuman, 2100 * ms, "a greeting of 1.3s"},
		{"long greeting", seq{{false, 500 * ms}, {true, 6 * time.Second}}, amdMachine, 3000 * ms, "without a pause"},
		{"greeting with short pauses", seq{{true, 900 * ms}, {false, 400 * ms}, {true, 900 * ms}, {false, 400 * ms}, {true, 3 * time.Second}}, amdMachine, 2620 * ms, "a greeting of 2.62s"}, // the first speech frame past 2.5 s
		{"silence", seq{{false, 10 * time.Second}}, amdHuman, 2 * time.Second, "silence for 2s"},
		{"clicks", seq{{true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms},
			{true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}, {true, 20 * ms}, {false, 700 * ms}}, amdHuman, 5 * time.Second, "undecided after 5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newAMDDetector(MachineDetection{Enabled: true})
			n := 0
			for _, run := range tc.script {
				for range int(run.d / frameDuration) {
					n++
					if v := d.push(run.speech); v != amdListening {
						if v != tc.want || frames(n) != tc.at || !strings.Contains(d.why, tc.why) {
							t.Errorf("%s at %s (%s), want %s at %s (%q)", v, frames(n), d.why, tc.want, tc.at, tc.why)
						}
						return
					}
				}
			}
			t.Errorf("no verdict after %s, want %s at %s", frames(n), tc.want, tc.at)
		})
	}
}
