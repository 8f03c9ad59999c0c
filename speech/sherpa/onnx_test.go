package sherpa

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/speech/silero"
)

func TestParseONNXReadsMetadata(t *testing.T) {
	b := toneVoiceModel(22050)
	info, err := parseONNX(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Nodes != 6 || info.Meta["sample_rate"] != "22050" || info.Meta["comment"] != "piper" {
		t.Fatalf("nodes %d meta %v", info.Nodes, info.Meta)
	}
}

// TestParseONNXEveryTruncation: a model cut at any byte before its
// trailing metadata is an error (it would abort the process inside
// onnxruntime); cut inside the metadata, it is an error unless the cut
// fell between whole entries, and then what was lost is missing (so a
// required key lost is an error, as sherpa-onnx would exit on it).
func TestParseONNXEveryTruncation(t *testing.T) {
	b := toneVoiceModel(16000)
	full, err := parseONNX(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	metaStart := -1
	for p := (&pbReader{r: bytes.NewReader(b), end: int64(len(b))}); p.off < p.end; {
		at := p.off
		num, _, _, _, err := p.field()
		if err != nil {
			t.Fatal(err)
		}
		if num == modelMetadata && metaStart < 0 {
			metaStart = int(at)
		}
	}
	if metaStart < len(b)/2 {
		t.Fatalf("metadata starts at %d of %d bytes", metaStart, len(b))
	}
	for n := 0; n < len(b); n++ {
		info, err := parseONNX(bytes.NewReader(b[:n]), int64(n))
		if err != nil {
			continue
		}
		if n < metaStart {
			t.Fatalf("model cut to %d of %d bytes (before the metadata at %d) parsed", n, len(b), metaStart)
		}
		if len(info.Meta) >= len(full.Meta) {
			t.Fatalf("cut to %d bytes: all %d metadata entries still there", n, len(info.Meta))
		}
		for k, v := range info.Meta {
			if full.Meta[k] != v {
				t.Fatalf("cut to %d bytes: metadata %q = %q, a cut value (whole: %q)", n, k, v, full.Meta[k])
			}
		}
	}
	// The model as built ends with "voice", which sherpa-onnx does not
	// require; "sample_rate" before it is: a cut losing it is an error.
	d := t.TempDir()
	for n := metaStart; n < len(b); n++ {
		info, err := parseONNX(bytes.NewReader(b[:n]), int64(n))
		if err != nil || info.Meta["sample_rate"] != "" {
			continue
		}
		if _, err := checkONNX(writeFile(t, d, "cut.onnx", b[:n]), vitsMeta...); !errors.Is(err, ErrBadModel) {
			t.Fatalf("cut to %d bytes, sample_rate lost: %v", n, err)
		}
	}
}

// TestCheckONNXRealModel reads the one real model this machine has, the
// silero VAD of speech/silero (make models), whole and truncated.
func TestCheckONNXRealModel(t *testing.T) {
	p, err := silero.FindModel()
	testenv.Need(t, "the silero VAD model", "model with make models", err)
	info, err := checkONNX(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Nodes == 0 {
		t.Fatal("no nodes")
	}
	if _, err := checkONNX(p, "n_mels"); !errors.Is(err, ErrBadModel) {
		t.Errorf("silero as a whisper encoder: %v, want ErrBadModel", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	for _, n := range []int{len(b) - 1, len(b) * 9 / 10, len(b) / 2, 4096, 16} {
		q := writeFile(t, d, "cut.onnx", b[:n])
		if _, err := checkONNX(q); !errors.Is(err, ErrBadModel) {
			t.Errorf("cut to %d bytes: %v, want ErrBadModel", n, err)
		}
	}
}

func TestCheckONNXNotAFile(t *testing.T) {
	d := t.TempDir()
	if _, err := checkONNX(d); !errors.Is(err, ErrBadModel) {
		t.Error(err)
	}
	if _, err := checkONNX(filepath.Join(d, "none.onnx")); !errors.Is(err, ErrBadModel) {
		t.Error(err)
	}
	if _, err := checkONNX(writeFile(t, d, "empty.onnx", nil)); !errors.Is(err, ErrBadModel) {
		t.Error(err)
	}
}

// FuzzParseONNX: no input makes the parser panic or hang.
func FuzzParseONNX(f *testing.F) {
	f.Add(toneVoiceModel(16000))
	f.Add(identityModel(map[string]string{"n_mels": "80"}))
	f.Add([]byte{0x08, 0x07, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseONNX(bytes.NewReader(b), int64(len(b)))
		if err == nil && info.Nodes == 0 {
			t.Fatal("a model without nodes was accepted")
		}
	})
}

func BenchmarkCheckONNX(b *testing.B) {
	p, err := silero.FindModel()
	testenv.Need(b, "the silero VAD model", "model with make models", err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := checkONNX(p); err != nil {
			b.Fatal(err)
		}
	}
}
