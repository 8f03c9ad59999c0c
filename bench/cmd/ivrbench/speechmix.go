package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/speechtest"
)

// The realistic speech run (-speech with -speaking below 100): every
// caller answers the shipped main menu, again and again, with utterances
// of the speech test set (the Romanian menu items, the six voices the
// engine is tuned on, through G.711 µ-law), separated by pauses so that a
// given share of the callers speaks at any moment. ivrd runs the bench
// flow (bench/flows/speech.lua): the shipped menu asked in a loop, with a
// long prompt the caller interrupts. What the callers said is known (the
// audio's timeline), what the line understood is in each call's events,
// so the run measures the recognition under load next to its cost.

// mixUtt is one utterance of the callers' audio.
type mixUtt struct {
	Say      string        `json:"say"`
	Voice    string        `json:"voice"`
	WantTag  string        `json:"want"`
	Start    time.Duration `json:"-"`
	End      time.Duration `json:"-"`
	Duration float64       `json:"duration_s"`
}

// speechMix is the audio every caller of the run streams (looped).
type speechMix struct {
	ulaw    []byte
	utts    []mixUtt
	cycle   time.Duration
	speech  time.Duration // the utterances' total length in a cycle
	share   float64       // speech / cycle
	minUtt  time.Duration
	maxUtt  time.Duration
	meanUtt time.Duration
}

const (
	mixRate      = 8000
	mixLead      = 2 * time.Second // silence before the first utterance: the line learns the room
	mixMinPause  = 1500 * time.Millisecond
	mixMinUtt    = time.Second
	mixMaxUtt    = 4 * time.Second
	mixSpreadFor = 20 * time.Second // calls start spread over this, so their utterances do not line up
)

// makeSpeechMix renders the test set's Romanian menu utterances and lays
// them out with pauses so that they fill share of the time.
func makeSpeechMix(share float64) (*speechMix, error) {
	syn, err := espeak.New(espeak.Options{Isolated: true, CacheBytes: -1})
	if err != nil {
		return nil, fmt.Errorf("espeak-ng: %w", err)
	}
	type take struct {
		it  speechtest.Item
		v   speechtest.Voice
		pcm []int16
	}
	var takes []take
	for _, v := range speechtest.DevVoices("ro") {
		for _, it := range speechtest.Items("ro") {
			if it.Grammar != "menu" || it.Part != "" {
				continue
			}
			pcm, err := speechtest.Synthesize(syn, speech.SynthRequest{Text: it.Say, Lang: v.Lang, Voice: v.Variant, Speed: v.Speed, Rate: mixRate})
			if err != nil {
				return nil, err
			}
			pcm = trimSilence(pcm)
			d := samplesDur(len(pcm))
			if d < mixMinUtt || d > mixMaxUtt {
				continue
			}
			takes = append(takes, take{it, v, pcm})
		}
	}
	if len(takes) == 0 {
		return nil, errors.New("no utterance of the test set's menu lasts 1 to 4 s")
	}
	rng := rand.New(rand.NewPCG(12, 2026))
	rng.Shuffle(len(takes), func(i, j int) { takes[i], takes[j] = takes[j], takes[i] })
	m := &speechMix{minUtt: time.Hour}
	pcm := make([]int16, int(mixLead/time.Millisecond)*mixRate/1000)
	for _, t := range takes {
		start := samplesDur(len(pcm))
		pcm = append(pcm, t.pcm...)
		d := samplesDur(len(t.pcm))
		m.utts = append(m.utts, mixUtt{Say: t.it.Say, Voice: t.v.String(), WantTag: t.it.WantTag, Start: start, End: start + d, Duration: round(d.Seconds(), 2)})
		m.speech += d
		m.minUtt, m.maxUtt = min(m.minUtt, d), max(m.maxUtt, d)
		// The pause that makes this utterance share of its stretch,
		// varied ±30 % so the callers' turns drift apart.
		p := time.Duration(float64(d) * (1 - share) / share * (0.7 + 0.6*rng.Float64()))
		p = max(p, mixMinPause)
		pcm = append(pcm, make([]int16, int(p/time.Millisecond)*mixRate/1000)...)
	}
	// A quiet line's noise under everything (-55 dBFS), as a real line
	// has: the line's noise estimate, and so where it places the first
	// loud frame of an utterance, come from it.
	sigma := 32768 * math.Pow(10, -55.0/20)
	for i := range pcm {
		v := float64(pcm[i]) + rng.NormFloat64()*sigma
		pcm[i] = int16(max(-32768, min(32767, math.Round(v))))
	}
	m.cycle = samplesDur(len(pcm))
	m.share = m.speech.Seconds() / m.cycle.Seconds()
	m.meanUtt = m.speech / time.Duration(len(m.utts))
	m.ulaw = make([]byte, len(pcm))
	for i, s := range pcm {
		m.ulaw[i] = audio.LinearToUlaw(s)
	}
	return m, nil
}

func samplesDur(n int) time.Duration { return time.Duration(n) * time.Second / mixRate }

// trimSilence cuts the synthesizer's leading and trailing silence (10 ms
// blocks under -50 dBFS), keeping 40 ms either side.
func trimSilence(pcm []int16) []int16 {
	const blk = mixRate / 100
	loud := func(i int) bool {
		var e float64
		for _, s := range pcm[i:min(i+blk, len(pcm))] {
			e += float64(s) * float64(s)
		}
		return math.Sqrt(e/blk) > 32768*math.Pow(10, -50.0/20)
	}
	first, last := -1, -1
	for i := 0; i < len(pcm); i += blk {
		if loud(i) {
			if first < 0 {
				first = i
			}
			last = min(i+blk, len(pcm))
		}
	}
	if first < 0 {
		return nil
	}
	return pcm[max(0, first-4*blk):min(len(pcm), last+4*blk)]
}

// SpeechResult is what the realistic speech run measured at one level.
type SpeechResult struct {
	SpeakingSharePct float64 `json:"speaking_share_pct"` // of the callers' audio: speech / cycle
	VoiceCalls       int     `json:"voice_calls"`        // calls answering by voice (the others: speech.max_calls reached, keys)
	KeysCalls        int     `json:"keys_calls"`         // ivr_speech_busy_total
	Speakers         float64 `json:"speakers"`           // voice calls x share: callers speaking at any moment whose words the line hears
	CPUPctPerSpeaker float64 `json:"cpu_pct_per_speaking_caller"`
	RSSMBPerSpeaker  float64 `json:"rss_mb_per_speaking_caller"`
	// The VAD's and the recognizer's wall time in the window
	// (ivr_vad_inference_seconds_total, ivr_speech_recognizer_seconds_total).
	VADUsPerWindow     float64 `json:"vad_us_per_window"`
	VADWindowsPerInfer float64 `json:"vad_windows_per_inference"`
	VADPctPerSpeaker   float64 `json:"vad_pct_per_speaking_caller"`
	RecogUsPerFrame    float64 `json:"recognizer_us_per_frame"`
	RecogPctPerSpeaker float64 `json:"recognizer_pct_per_speaking_caller"`
	FramesDropped      float64 `json:"speech_frames_dropped"` // whole run
	BargeIns           float64 `json:"bargeins"`              // in the window
	BargeInP50Ms       float64 `json:"bargein_p50_ms"`        // bucket upper bounds
	BargeInP95Ms       float64 `json:"bargein_p95_ms"`
	Said               int     `json:"utterances_said"`       // whole calls: utterances ended 2 s before the call did
	Heard              int     `json:"answers_heard"`         // speech.result events
	Right              int     `json:"answers_right"`         // heard as said, in order
	AccuracyPct        float64 `json:"accuracy_pct"`          // right / said
	AccuracyDropPts    float64 `json:"accuracy_drop_pts"`     // against the run's first (smallest) level
	Unanswered         int     `json:"unanswered_utterances"` // speech.unanswered events
	Error              string  `json:"error,omitempty"`
}

var tagRE = regexp.MustCompile(`^tag "([^"]*)"`)

// speechOutcome reads every call's events and scores what the line heard
// against what its caller said.
func (e *benchEnv) speechOutcome(dataDir string, sr *SpeechResult) error {
	out, err := exec.Command(e.ctl, "calls", "list", "--json", "--limit", "0", "--data", dataDir).Output()
	if err != nil {
		return fmt.Errorf("ivrctl calls list: %w", err)
	}
	var v struct {
		Calls []struct {
			ID     string     `json:"id"`
			Answer *time.Time `json:"answer"`
			End    *time.Time `json:"end"`
		} `json:"calls"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("ivrctl calls list --json: %w", err)
	}
	for _, c := range v.Calls {
		if c.Answer == nil || c.End == nil {
			continue
		}
		tout, err := exec.Command(e.ctl, "calls", "trace", c.ID, "--json", "--data", dataDir).Output()
		if err != nil {
			return fmt.Errorf("ivrctl calls trace %s: %w", c.ID, err)
		}
		var tr struct {
			Timeline []struct {
				Kind   string `json:"kind"`
				Detail string `json:"detail"`
			} `json:"timeline"`
		}
		if err := json.Unmarshal(tout, &tr); err != nil {
			return fmt.Errorf("ivrctl calls trace %s --json: %w", c.ID, err)
		}
		var heard []string
		busy := false
		for _, l := range tr.Timeline {
			switch l.Kind {
			case "speech.busy":
				busy = true
			case "speech.result":
				tag := ""
				if m := tagRE.FindStringSubmatch(l.Detail); m != nil {
					tag = m[1]
				}
				heard = append(heard, optionOf(tag))
			case "speech.unanswered":
				sr.Unanswered++
			}
		}
		if busy {
			continue // answers with keys: nothing to score
		}
		var said []string
		long := c.End.Sub(*c.Answer) - 2*time.Second
		for k := 0; ; k++ {
			base := time.Duration(k) * e.mix.cycle
			if base >= long {
				break
			}
			for _, u := range e.mix.utts {
				if base+u.End <= long {
					said = append(said, optionOf(u.WantTag))
				}
			}
		}
		sr.Said += len(said)
		sr.Heard += len(heard)
		sr.Right += lcs(said, heard)
	}
	if sr.Said > 0 {
		sr.AccuracyPct = round(float64(sr.Right)/float64(sr.Said)*100, 2)
	}
	return nil
}

// optionOf is the shipped menu's option a recognized tag (the phrase the
// grammar matched) stands for; other tags (the escapes, an option id)
// as the flows read them.
func optionOf(tag string) string {
	n := speech.NormalizeText(tag)
	for _, o := range speechtest.ShippedMenu {
		if tag == o.ID {
			return o.ID
		}
		for _, p := range o.Phrases {
			if speech.NormalizeText(p) == n {
				return o.ID
			}
		}
	}
	return speechtest.Meaning(tag)
}

// lcs is the length of the longest common subsequence of a and b: the
// answers heard right, in the order they were said.
func lcs(a, b []string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			default:
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// The shipped menu, from flows/main.lua into the bench flow.
var menuRE = regexp.MustCompile(`(?ms)^local MENU = \{.*?^\}\n`)

const menuMark = "--[[MENU]]"

// writeSpeechFlows makes the flows folder of the speech run: the shipped
// one (its prompts and knowledge base) with the bench flow as main.lua.
func (e *benchEnv) writeSpeechFlows() error {
	dir := filepath.Join(e.work, "flows")
	if out, err := exec.Command("cp", "-r", filepath.Join(e.root, "flows"), dir).CombinedOutput(); err != nil {
		return fmt.Errorf("copy flows: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(e.root, "bench", "flows", "speech.lua"))
	if err != nil {
		return err
	}
	shipped, err := os.ReadFile(filepath.Join(e.root, "flows", "main.lua"))
	if err != nil {
		return err
	}
	menu := menuRE.Find(shipped)
	if menu == nil || !bytes.Contains(b, []byte(menuMark)) {
		return fmt.Errorf("bench/flows/speech.lua wants flows/main.lua's \"local MENU = {\" ... \"}\" at its %s line", menuMark)
	}
	b = bytes.Replace(b, []byte(menuMark), menu, 1)
	if err := os.WriteFile(filepath.Join(dir, "main.lua"), b, 0o644); err != nil {
		return err
	}
	e.flowsDir = dir
	return nil
}

// describeMix is the method note of the speech run.
func (m *speechMix) describe() string {
	voices := map[string]bool{}
	for _, u := range m.utts {
		voices[u.Voice] = true
	}
	names := make([]string, 0, len(voices))
	for v := range voices {
		names = append(names, v)
	}
	sort.Strings(names)
	return fmt.Sprintf("each caller streams (sipp rtp_stream, looped) a %.1f s cycle of %d utterances of the speech test set (the Romanian menu items said by %s: %.1f to %.1f s, mean %.1f s; G.711 u-law) separated by pauses: speech is %.1f %% of the cycle; calls start spread over %s so their turns do not line up; ivrd runs bench/flows/speech.lua (the shipped menu asked in a loop, a long barge-in prompt)",
		m.cycle.Seconds(), len(m.utts), strings.Join(names, ", "), m.minUtt.Seconds(), m.maxUtt.Seconds(), m.meanUtt.Seconds(), m.share*100, mixSpreadFor)
}

// speechWindow computes the speech run's figures of the window (m0 at its
// start, m1 at its end, wall seconds, up calls).
func (e *benchEnv) speechWindow(lr LoadResult, m0, m1 promSample, wall float64, up int) *SpeechResult {
	delta := func(name string) float64 { return m1[name] - m0[name] }
	sr := &SpeechResult{SpeakingSharePct: round(e.mix.share*100, 1)}
	sr.KeysCalls = int(m1["ivr_speech_busy_total"])
	sr.VoiceCalls = up - sr.KeysCalls
	sr.Speakers = round(float64(sr.VoiceCalls)*e.mix.share, 1)
	if sr.Speakers <= 0 {
		return sr
	}
	sr.CPUPctPerSpeaker = round(lr.CPUPctTotal/sr.Speakers, 3)
	sr.RSSMBPerSpeaker = round((lr.RSSLoadMB-lr.RSSIdleMB)/sr.Speakers, 3)
	if w := delta("ivr_vad_windows_total"); w > 0 {
		vad := delta("ivr_vad_inference_seconds_total")
		sr.VADUsPerWindow = round(vad/w*1e6, 1)
		sr.VADWindowsPerInfer = round(w/delta("ivr_vad_inferences_total"), 1)
		sr.VADPctPerSpeaker = round(vad/wall*100/sr.Speakers, 4)
	}
	if f := delta("ivr_speech_recognizer_frames_total"); f > 0 {
		rec := delta("ivr_speech_recognizer_seconds_total")
		sr.RecogUsPerFrame = round(rec/f*1e6, 1)
		sr.RecogPctPerSpeaker = round(rec/wall*100/sr.Speakers, 3)
	}
	const barge = "ivr_speech_bargein_seconds"
	h := histDelta(m0.histogram(barge), m1.histogram(barge))
	p50, cnt := quantile(h, 0.5)
	p95, _ := quantile(h, 0.95)
	sr.BargeIns, sr.BargeInP50Ms, sr.BargeInP95Ms = cnt, ms(p50), ms(p95)
	return sr
}
