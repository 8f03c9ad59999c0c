package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/speech/silero"
)

// A variable set to the empty string sets its key to empty: the README's
// IVR_CONSOLE_LISTEN= turns the console off (two engines on one machine
// both took 127.0.0.1:8081, and the second stopped). An unset variable
// leaves the key alone; an empty value where a number or a boolean is
// wanted is an error that names the key and the variable.
func TestEmptyVariableMeansEmpty(t *testing.T) {
	c, err := LoadConfig("", env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t), "IVR_CONSOLE_LISTEN": "", "IVR_WEBHOOK_URL": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Console.Listen != "" {
		t.Errorf("IVR_CONSOLE_LISTEN= leaves console.listen %q, want it off", c.Console.Listen)
	}
	c, err = LoadConfig("", env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t)}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Console.Listen != "127.0.0.1:8081" {
		t.Errorf("unset IVR_CONSOLE_LISTEN: console.listen %q, want the default", c.Console.Listen)
	}
	_, err = LoadConfig("", env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t), "IVR_RECORD_CALLS": ""}))
	if err == nil || !strings.Contains(err.Error(), "engine.record_calls (from IVR_RECORD_CALLS)") {
		t.Errorf("IVR_RECORD_CALLS= : %v, want an error naming the key", err)
	}
}

// The VAD model's folder comes from speech.models_dir (IVR_MODELS_DIR):
// the daemon started from any folder finds it there; a folder without it
// turns speech off with a warning that names the key to set.
func TestModelsDirFromConfig(t *testing.T) {
	c, err := LoadConfig("", env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t), "IVR_MODELS_DIR": t.TempDir()}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	sc, _, closeSpeech, _ := startSpeech(c.Speech, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	closeSpeech()
	if sc != nil {
		t.Fatal("speech on without the model")
	}
	if !strings.Contains(logs.String(), "speech.models_dir") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the warning does not name the key:\n%s", logs.String())
	}

	// The model in a folder of its own, the daemon in another folder.
	found, err := silero.FindModel()
	testenv.Need(t, "the silero VAD model", "model with make models", err)
	dir := t.TempDir()
	b, err := os.ReadFile(found)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, silero.ModelFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	flows := flowsDir(t)
	t.Chdir(t.TempDir())
	c, err = LoadConfig("", env(map[string]string{"IVR_FLOWS_DIR": flows, "IVR_MODELS_DIR": dir}))
	if err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	sc, _, closeSpeech, _ = startSpeech(c.Speech, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	defer closeSpeech()
	if sc == nil {
		testenv.Missing(t, "the embedded speech engines", "Debian packages espeak-ng libespeak-ng-dev libpocketsphinx-dev pocketsphinx-en-us (make deps)", nil)
	}
}
