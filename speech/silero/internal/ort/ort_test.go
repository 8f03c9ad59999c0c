package ort

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// The silero v5 model's inputs and outputs, read from the model.
func TestSileroIO(t *testing.T) {
	p := ""
	for dir, _ := os.Getwd(); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "var/models/silero_vad_v5.onnx")); err == nil {
			p = filepath.Join(dir, "var/models/silero_vad_v5.onnx")
			break
		}
		if filepath.Dir(dir) == dir {
			t.Skip("no var/models/silero_vad_v5.onnx (make models)")
		}
	}
	s, err := NewSession(p, 1)
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
}
