package ort

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govline/ivr/internal/testenv"
)

func TestVersion(t *testing.T) {
	v, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "1.") {
		t.Fatalf("version %q", v)
	}
	t.Logf("onnxruntime %s", v)
}

// modelFile finds var/models/silero_vad_v5.onnx in this folder or a
// parent (make models fetches it).
func modelFile(t *testing.T) string {
	for dir, _ := os.Getwd(); ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "var/models/silero_vad_v5.onnx")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if filepath.Dir(dir) == dir {
			testenv.Missing(t, "the silero VAD model", "model with make models", os.ErrNotExist)
			return ""
		}
	}
}

// The silero v5 model's inputs and outputs, read from the model.
func TestSileroIO(t *testing.T) {
	s, err := NewSession(modelFile(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, err := s.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Outputs()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("inputs %v outputs %v", in, out)
	want := fmt.Sprint([]IO{{"input", Float32, []int64{-1, -1}}, {"state", Float32, []int64{2, -1, 128}}, {"sr", Int64, nil}})
	if got := fmt.Sprint(in); got != want {
		t.Errorf("inputs %s, want %s", got, want)
	}
	if len(out) != 2 || out[0].Name != "output" || out[0].Elem != Float32 || fmt.Sprint(out[0].Shape) != "[-1 1]" || out[1].Name != "stateN" || out[1].Elem != Float32 {
		t.Errorf("outputs %v, want output [-1 1] and stateN", out)
	}
}

// A session runs: silence through the model gives a low probability and
// a new state; a tensor too big for its buffer is refused.
func TestRun(t *testing.T) {
	p := modelFile(t)
	s, err := NewSession(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x, st, sr, prob, stN := NewBuffer(4*576), NewBuffer(4*256), NewBuffer(8), NewBuffer(4), NewBuffer(4*256)
	for _, b := range []*Buffer{x, st, sr, prob, stN} {
		defer b.Free()
	}
	sr.Int64s()[0] = 16000
	var ts []*Tensor
	for _, a := range []struct {
		b     *Buffer
		elem  int
		shape []int64
	}{{x, Float32, []int64{1, 576}}, {st, Float32, []int64{2, 1, 128}}, {sr, Int64, nil}, {prob, Float32, []int64{1, 1}}, {stN, Float32, []int64{2, 1, 128}}} {
		tt, err := NewTensor(a.b, a.elem, a.shape...)
		if err != nil {
			t.Fatal(err)
		}
		defer tt.Close()
		ts = append(ts, tt)
	}
	in, out := NewNames("input", "state", "sr"), NewNames("output", "stateN")
	if err := s.Run(in, ts[:3], out, ts[3:]); err != nil {
		t.Fatal(err)
	}
	if p := prob.Float32s()[0]; p < 0 || p > 0.2 {
		t.Errorf("silence: probability %v", p)
	}
	if _, err := NewTensor(x, Float32, 2, 576); err == nil {
		t.Error("a tensor larger than its buffer was made")
	}
	if err := s.Run(in, ts[:2], out, ts[3:]); err == nil {
		t.Error("Run with a missing input succeeded")
	}
}
