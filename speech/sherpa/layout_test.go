package sherpa

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/govline/ivr/internal/testenv"
)

// whisperDir lays out a whisper release folder as the tarball unpacks
// (tiny-encoder.onnx, tiny-decoder.onnx, their int8 twins, tiny-tokens.txt).
func whisperDir(t *testing.T, langs ...string) string {
	d := t.TempDir()
	enc := identityModel(whisperMetaFor(langs...))
	dec := identityModel(nil)
	writeFile(t, d, "tiny-encoder.onnx", enc)
	writeFile(t, d, "tiny-encoder.int8.onnx", enc)
	writeFile(t, d, "tiny-decoder.onnx", dec)
	writeFile(t, d, "tiny-decoder.int8.onnx", dec)
	writeFile(t, d, "tiny-tokens.txt", []byte("IQ== 0\nIg== 1\n"))
	writeFile(t, d, "test_wavs/0.wav", []byte("RIFF"))
	return d
}

func TestDetectASRWhisper(t *testing.T) {
	d := whisperDir(t, "en", "ro", "de")
	m, err := DetectASR(d, KindAuto, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindWhisper || filepath.Base(m.Encoder) != "tiny-encoder.int8.onnx" ||
		filepath.Base(m.Decoder) != "tiny-decoder.int8.onnx" || filepath.Base(m.Tokens) != "tiny-tokens.txt" {
		t.Fatalf("detected %+v", m)
	}
	if !m.Supports("ro") || !m.Supports("en") || m.Supports("hu") {
		t.Errorf("languages %v: ro/en supported, hu not", m.Languages)
	}
	m, err = DetectASR(d, KindWhisper, true)
	if err != nil || filepath.Base(m.Encoder) != "tiny-encoder.onnx" {
		t.Fatalf("float preferred: %+v, %v", m, err)
	}
	if _, err := DetectASR(d, KindTransducer, false); !errors.Is(err, ErrModelDir) || !strings.Contains(err.Error(), "holds a whisper model") {
		t.Errorf("kind transducer on a whisper folder: %v", err)
	}
	// English-only whisper (tiny.en): no Romanian.
	en := whisperDir(t)
	m, err = DetectASR(en, KindAuto, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Multilingual || !m.Supports("en") || m.Supports("ro") {
		t.Errorf("tiny.en: %+v", m)
	}
}

func TestDetectASRTransducer(t *testing.T) {
	d := t.TempDir()
	nemo := map[string]string{"vocab_size": "8192", "subsampling_factor": "8", "pred_rnn_layers": "2", "pred_hidden": "640", "normalize_type": "per_feature"}
	writeFile(t, d, "encoder.int8.onnx", identityModel(nemo))
	writeFile(t, d, "decoder.int8.onnx", identityModel(nil))
	writeFile(t, d, "joiner.int8.onnx", identityModel(nil))
	writeFile(t, d, "tokens.txt", []byte("<unk> 0\n▁da 1\n"))
	m, err := DetectASR(d, KindAuto, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindTransducer || !m.NeMo || filepath.Base(m.Joiner) != "joiner.int8.onnx" || !m.Supports("ro") {
		t.Fatalf("parakeet layout: %+v", m)
	}
	// icefall zipformer: the decoder carries vocab_size and context_size.
	z := t.TempDir()
	writeFile(t, z, "encoder-epoch-99-avg-1.onnx", identityModel(nil))
	writeFile(t, z, "decoder-epoch-99-avg-1.onnx", identityModel(map[string]string{"vocab_size": "500", "context_size": "2"}))
	writeFile(t, z, "joiner-epoch-99-avg-1.onnx", identityModel(nil))
	writeFile(t, z, "tokens.txt", []byte("<blk> 0\n"))
	if m, err := DetectASR(z, KindTransducer, false); err != nil || m.NeMo {
		t.Fatalf("zipformer layout: %+v, %v", m, err)
	}
	// An icefall decoder without its metadata: sherpa-onnx would exit.
	writeFile(t, z, "decoder-epoch-99-avg-1.onnx", identityModel(nil))
	if _, err := DetectASR(z, KindAuto, false); !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "context_size") {
		t.Errorf("decoder without context_size: %v", err)
	}
}

// TestDetectErrorsNameTheFile: every incomplete folder is an error that
// says what is missing.
func TestDetectErrorsNameTheFile(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(d string)
		want   string
	}{
		{"no tokens", func(d string) { os.Remove(filepath.Join(d, "tiny-tokens.txt")) }, "tokens.txt is missing"},
		{"no decoder", func(d string) {
			os.Remove(filepath.Join(d, "tiny-decoder.onnx"))
			os.Remove(filepath.Join(d, "tiny-decoder.int8.onnx"))
		}, "decoder (*decoder*.onnx) is missing"},
		{"two int8 encoders", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, "tiny-encoder.int8.onnx"))
			os.WriteFile(filepath.Join(d, "base-encoder.int8.onnx"), b, 0o644)
		}, "several *encoder*.onnx files"},
		{"empty tokens", func(d string) { os.WriteFile(filepath.Join(d, "tiny-tokens.txt"), nil, 0o644) }, "tiny-tokens.txt is empty"},
		{"bad tokens", func(d string) {
			os.WriteFile(filepath.Join(d, "tiny-tokens.txt"), []byte("a 0\nnot-a-token-line\n"), 0o644)
		}, "line 2 is not"},
		{"truncated encoder", func(d string) {
			p := filepath.Join(d, "tiny-encoder.int8.onnx")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-3], 0o644)
		}, "tiny-encoder.int8.onnx"},
		{"encoder without whisper metadata", func(d string) {
			os.WriteFile(filepath.Join(d, "tiny-encoder.int8.onnx"), identityModel(nil), 0o644)
		}, "n_mels"},
		{"language codes and tokens differ", func(d string) {
			m := whisperMetaFor("en", "ro")
			m["all_language_tokens"] = "50259"
			os.WriteFile(filepath.Join(d, "tiny-encoder.int8.onnx"), identityModel(m), 0o644)
		}, "1 language tokens for 2 language codes"},
		{"not onnx at all", func(d string) {
			os.WriteFile(filepath.Join(d, "tiny-decoder.int8.onnx"), []byte("<html>404 Not Found</html>"), 0o644)
		}, "not a whole ONNX model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := whisperDir(t, "ro", "en")
			c.mutate(d)
			_, err := DetectASR(d, KindAuto, false)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want one saying %q", err, c.want)
			}
		})
	}
	t.Run("missing folder", func(t *testing.T) {
		_, err := DetectASR(filepath.Join(t.TempDir(), "nope"), KindAuto, false)
		if !errors.Is(err, ErrModelDir) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatal(err)
		}
	})
	t.Run("tarball unpacked one level up", func(t *testing.T) {
		top := t.TempDir()
		inner := whisperDir(t, "ro")
		if err := os.Rename(inner, filepath.Join(top, "sherpa-onnx-whisper-tiny")); err != nil {
			t.Fatal(err)
		}
		_, err := DetectASR(top, KindAuto, false)
		if err == nil || !strings.Contains(err.Error(), "did you mean "+filepath.Join(top, "sherpa-onnx-whisper-tiny")) {
			t.Fatal(err)
		}
	})
	t.Run("bad kind", func(t *testing.T) {
		if _, err := DetectASR(t.TempDir(), "paraformer", false); err == nil || !strings.Contains(err.Error(), "paraformer") {
			t.Fatal(err)
		}
	})
}

// voiceDir lays out a piper voice release folder (vits-piper-*): the
// model, tokens.txt and espeak-ng-data/ (a link to the system's when
// sysData is set, else a stub with phontab).
//
// sherpa-onnx initialises its espeak-ng once per process, with the data
// folder of the first voice loaded; so voices with the system's data live
// in a folder that outlasts the test (removed by TestMain).
func voiceDir(t testing.TB, model []byte, sysData bool) string {
	d := t.TempDir()
	if sysData {
		var err error
		if d, err = os.MkdirTemp(voiceRoot, "voice"); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, d, "ro_RO-test-medium.onnx", model)
	writeFile(t, d, "MODEL_CARD", []byte("test voice"))
	var b strings.Builder
	b.WriteString("_ 0\n^ 1\n$ 2\n  3\n")
	id := 4
	for r := rune(0x21); r < 0x370; r++ {
		if r == '_' || r == '^' || r == '$' {
			continue
		}
		b.WriteString(string(r) + " " + strconv.Itoa(id) + "\n")
		id++
	}
	writeFile(t, d, "tokens.txt", []byte(b.String()))
	if sysData {
		if err := os.Symlink(systemEspeakData(t), filepath.Join(d, "espeak-ng-data")); err != nil {
			t.Fatal(err)
		}
	} else {
		writeFile(t, d, "espeak-ng-data/phontab", []byte{0})
	}
	return d
}

// systemEspeakData is Debian's espeak-ng-data (package espeak-ng-data,
// pulled in by espeak-ng in the Makefile's DEBS): the voice data sherpa-
// onnx's own espeak-ng reads for piper's phonemes.
func systemEspeakData(t testing.TB) string {
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/lib/aarch64-linux-gnu/espeak-ng-data", "/usr/share/espeak-ng-data"} {
		if _, err := os.Stat(filepath.Join(p, "phontab")); err == nil {
			return p
		}
	}
	testenv.Missing(t, "espeak-ng-data", "Debian package espeak-ng-data (pulled in by espeak-ng: make deps)", nil)
	return ""
}

func TestDetectTTS(t *testing.T) {
	d := voiceDir(t, toneVoiceModel(22050), false)
	m, err := DetectTTS(d, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rate != 22050 || m.Speakers != 1 || filepath.Base(m.Model) != "ro_RO-test-medium.onnx" || m.Language != "Romanian" || m.Lexicon != "" {
		t.Fatalf("detected %+v", m)
	}
	t.Run("no espeak-ng-data", func(t *testing.T) {
		d := voiceDir(t, toneVoiceModel(16000), false)
		os.RemoveAll(filepath.Join(d, "espeak-ng-data"))
		if _, err := DetectTTS(d, false); err == nil || !strings.Contains(err.Error(), "espeak-ng-data/ is missing") {
			t.Fatal(err)
		}
	})
	t.Run("espeak-ng-data without phontab", func(t *testing.T) {
		d := voiceDir(t, toneVoiceModel(16000), false)
		os.Remove(filepath.Join(d, "espeak-ng-data", "phontab"))
		if _, err := DetectTTS(d, false); err == nil || !strings.Contains(err.Error(), "phontab is missing") {
			t.Fatal(err)
		}
	})
	t.Run("raw piper voice", func(t *testing.T) {
		// As piper itself ships a voice: no sherpa-onnx metadata, a .json
		// beside it.
		d := voiceDir(t, identityModel(map[string]string{}), false)
		writeFile(t, d, "ro_RO-test-medium.onnx.json", []byte(`{"audio":{"sample_rate":22050}}`))
		_, err := DetectTTS(d, false)
		if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "sample_rate") || !strings.Contains(err.Error(), "vits-piper-") {
			t.Fatal(err)
		}
	})
	t.Run("absurd sample rate", func(t *testing.T) {
		if _, err := DetectTTS(voiceDir(t, toneVoiceModel(100), false), false); err == nil || !strings.Contains(err.Error(), "sample_rate") {
			t.Fatal(err)
		}
	})
	t.Run("no model", func(t *testing.T) {
		d := voiceDir(t, toneVoiceModel(16000), false)
		os.Remove(filepath.Join(d, "ro_RO-test-medium.onnx"))
		if _, err := DetectTTS(d, false); err == nil || !strings.Contains(err.Error(), "voice model (.onnx) is missing") {
			t.Fatal(err)
		}
	})
}

// voiceRoot holds the voice folders that must outlast their test.
var voiceRoot string

func TestMain(m *testing.M) {
	var err error
	if voiceRoot, err = os.MkdirTemp("", "sherpa-voices-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(voiceRoot)
	os.Exit(code)
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
