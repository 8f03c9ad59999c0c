package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govline/ivr/audio"
)

// say renders text, transcribe hears it back through a grammar file: the
// two commands a designer uses to try a prompt and a grammar.
func TestSpeechSayTranscribe(t *testing.T) {
	dir := t.TempDir()
	wav := filepath.Join(dir, "p.wav")
	var out, errb bytes.Buffer
	if code := run([]string{"speech", "say", "--lang", "ro", "-o", wav, "pașaportul"}, &out, &errb); code != exitOK {
		t.Fatalf("say: exit %d: %s", code, errb.String())
	}
	pcm, err := audio.LoadWAVFile(wav, 8000)
	if err != nil || len(pcm) < 4000 {
		t.Fatalf("say wrote %d samples: %v", len(pcm), err)
	}
	gram := filepath.Join(dir, "menu.txt")
	os.WriteFile(gram, []byte("# main menu\nbuletin: buletin | buletinul\npașaport: pașaport | pașaportul\ncont\noperator\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"speech", "transcribe", "--lang", "ro", "--grammar", gram, "--json", wav}, &out, &errb); code != exitOK {
		t.Fatalf("transcribe: exit %d: %s", code, errb.String())
	}
	var tr transcript
	if err := json.Unmarshal(out.Bytes(), &tr); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if tr.Tag != "pașaport" || tr.Rate != 8000 || len(tr.Words) == 0 {
		t.Fatalf("transcript %+v", tr)
	}
	// Text output with partials, at 16 kHz, English, default grammar.
	wav16 := filepath.Join(dir, "yes.wav")
	if code := run([]string{"speech", "say", "--lang", "en", "--rate", "16000", "-o", wav16, "passport"}, &out, &errb); code != exitOK {
		t.Fatalf("say en: %s", errb.String())
	}
	out.Reset()
	if code := run([]string{"speech", "transcribe", "--lang", "en", wav16}, &out, &errb); code != exitOK {
		t.Fatalf("transcribe en: %s", errb.String())
	}
	if !strings.Contains(out.String(), "final           passport") || !strings.Contains(out.String(), "partial") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestSpeechErrors(t *testing.T) {
	dir := t.TempDir()
	notWav := filepath.Join(dir, "x.wav")
	os.WriteFile(notWav, []byte("not a wav file at all"), 0o644)
	badGram := filepath.Join(dir, "g.txt")
	os.WriteFile(badGram, []byte("digits many\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"speech"}, exitUsage, "missing subcommand"},
		{[]string{"speech", "shout"}, exitUsage, "unknown subcommand"},
		{[]string{"speech", "say", "hello"}, exitUsage, "-o OUT.wav is required"},
		{[]string{"speech", "say", "-o", filepath.Join(dir, "o.wav")}, exitUsage, "no text"},
		{[]string{"speech", "say", "--lang", "fr", "-o", filepath.Join(dir, "o.wav"), "x"}, exitUsage, "want ro or en"},
		{[]string{"speech", "say", "--rate", "44100", "-o", filepath.Join(dir, "o.wav"), "x"}, exitUsage, "sample rate"},
		{[]string{"speech", "transcribe"}, exitUsage, "want one WAV file"},
		{[]string{"speech", "transcribe", filepath.Join(dir, "missing.wav")}, exitError, "no such file"},
		{[]string{"speech", "transcribe", notWav}, exitError, "bad WAV"},
		{[]string{"speech", "transcribe", "--grammar", badGram, notWav}, exitError, "digits N"},
		{[]string{"speech", "transcribe", "--lang", "de", notWav}, exitUsage, "want ro or en"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errb.String(), c.code, c.msg)
		}
	}
}
