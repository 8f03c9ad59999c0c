package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/speech/silero"
)

// Without the VAD model the line is keys only, and ivrd says so once.
func TestSpeechOffWithoutModel(t *testing.T) {
	t.Setenv(silero.EnvModelsDir, t.TempDir())
	var logs bytes.Buffer
	sc, closeSpeech := startSpeech(SpeechConfig{Enabled: true, VADThreshold: 0.5, MinSpeech: Duration{120 * time.Millisecond}}, slog.New(slog.NewTextHandler(&logs, nil)))
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
	sc, closeSpeech := startSpeech(SpeechConfig{Enabled: false}, slog.New(slog.NewTextHandler(&logs, nil)))
	defer closeSpeech()
	if sc != nil || !strings.Contains(logs.String(), "speech off by configuration") {
		t.Errorf("speech %v, log %q", sc, logs.String())
	}
}
