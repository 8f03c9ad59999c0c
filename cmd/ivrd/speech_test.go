package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/speech/openai"
	"github.com/govline/ivr/speech/silero"
)

// Without the VAD model the line is keys only, and ivrd says so once.
func TestSpeechOffWithoutModel(t *testing.T) {
	t.Setenv(silero.EnvModelsDir, t.TempDir())
	var logs bytes.Buffer
	sc, _, closeSpeech, _ := startSpeech(SpeechConfig{Enabled: true, VADThreshold: 0.5, MinSpeech: Duration{120 * time.Millisecond}, Recognizer: "embedded", Synthesizer: "embedded"}, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	defer closeSpeech()
	if sc.Enabled() {
		t.Fatal("speech on without a VAD model")
	}
	if n := strings.Count(logs.String(), "speech off"); n != 1 || !strings.Contains(logs.String(), "make models") {
		t.Errorf("want one line saying speech is off and how to fix it, got:\n%s", logs.String())
	}
}

// With speech disabled nothing is loaded.
func TestSpeechOffByConfig(t *testing.T) {
	var logs bytes.Buffer
	sc, synth, closeSpeech, _ := startSpeech(SpeechConfig{Enabled: false, Recognizer: "embedded", Synthesizer: "embedded"}, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	defer closeSpeech()
	if sc != nil || !strings.Contains(logs.String(), "speech off by configuration") {
		t.Errorf("speech %v, log %q", sc, logs.String())
	}
	if synth == nil || synth.Engine != nil {
		t.Errorf("prompts' synthesizer %+v, want the embedded espeak-ng (Engine nil)", synth)
	}
}

// The ladder from the configuration: a network recognizer first with the
// embedded one behind it; a sherpa model folder that is not there is
// reported and the embedded engines serve alone.
func TestSpeechLadderFromConfig(t *testing.T) {
	c, err := LoadConfig("", env(map[string]string{"IVR_SPEECH_RECOGNIZER": "openai", "IVR_SPEECH_SYNTHESIZER": "openai", "IVR_OPENAI_URL": "http://127.0.0.1:9/v1", "IVR_FLOWS_DIR": "../../flows"}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	sc, synth, closeSpeech, _ := startSpeech(c.Speech, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	defer closeSpeech()
	if sc == nil {
		testenv.Missing(t, "the embedded speech engines", "Debian packages espeak-ng libespeak-ng-dev libpocketsphinx-dev pocketsphinx-en-us and the VAD model (make deps models)", errors.New(logs.String()))
	}
	if _, ok := sc.Recognizer.(*openai.Recognizer); !ok || sc.Fallback == nil {
		t.Errorf("recognizer %T, fallback %v: want openai first, pocketsphinx behind it", sc.Recognizer, sc.Fallback)
	}
	if _, ok := synth.Engine.(*openai.Synthesizer); !ok || synth.Fallback == nil {
		t.Errorf("synthesizer %T, fallback %v: want openai first, espeak-ng behind it", synth.Engine, synth.Fallback)
	}

	c.Speech.Recognizer, c.Speech.Synthesizer = "sherpa", "sherpa"
	c.Speech.Sherpa.ASRDirRO = filepath.Join(t.TempDir(), "sherpa-onnx-whisper-small")
	c.Speech.Sherpa.TTSDirRO = filepath.Join(t.TempDir(), "vits-piper-ro_RO-mihai-medium")
	logs.Reset()
	sc, synth, closeSpeech2, _ := startSpeech(c.Speech, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	defer closeSpeech2()
	if sc == nil || sc.Fallback != nil || synth.Engine != nil {
		t.Errorf("with missing sherpa models: speech %+v, synthesizer %T; want the embedded engines alone", sc, synth.Engine)
	}
	for _, want := range []string{"speech recognizer not started", "speech synthesizer not started", "sherpa-onnx-whisper-small", "vits-piper-ro_RO-mihai-medium"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// The VAD is the shared model unless speech.vad says per-call.
func TestSpeechVADChoice(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{{"", "*silero.Stream"}, {"per-call", "*silero.Detector"}, {"shared", "*silero.Stream"}} {
		vars := map[string]string{"IVR_FLOWS_DIR": "../../flows"}
		if tc.env != "" {
			vars["IVR_SPEECH_VAD"] = tc.env
		}
		c, err := LoadConfig("", env(vars))
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		sc, _, closeSpeech, vadMetrics := startSpeech(c.Speech, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
		if sc == nil {
			closeSpeech()
			testenv.Missing(t, "the embedded speech engines", "Debian packages espeak-ng libespeak-ng-dev libpocketsphinx-dev pocketsphinx-en-us and the VAD model (make deps models)", errors.New(logs.String()))
		}
		_, _, _, metrics := startSpeech(SpeechConfig{}, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
		if metrics != nil {
			t.Error("metrics with speech off")
		}
		v, release, err := sc.NewVAD(8000)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", v); got != tc.want {
			t.Errorf("speech.vad %q: VAD %s, want %s", tc.env, got, tc.want)
		}
		if _, err := v.Process(make([]int16, 160)); err != nil {
			t.Error(err)
		}
		release()
		closeSpeech()
		// the shared model's counters are served at /metrics
		if names := metricNames(t, vadMetrics); tc.want == "*silero.Stream" && !slices.Equal(names, []string{"ivr_vad_inference_seconds_total", "ivr_vad_inferences_total", "ivr_vad_windows_total"}) {
			t.Errorf("speech.vad %q: metrics %v", tc.env, names)
		} else if tc.want != "*silero.Stream" && len(names) != 0 {
			t.Errorf("speech.vad %q: metrics %v, want none", tc.env, names)
		}
	}
}

func metricNames(t *testing.T, cs []prometheus.Collector) []string {
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		reg.MustRegister(c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names
}
