package sherpa

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// A minimal ONNX (protobuf) writer for the tests: enough to make real
// model files that onnxruntime loads and runs, with the metadata
// sherpa-onnx reads. No model weights are available here, so the tests
// build small models whose graphs do something checkable.

type pb []byte

func (b pb) varint(v uint64) pb { return binary.AppendUvarint(b, v) }
func (b pb) tag(num, wt int) pb { return b.varint(uint64(num<<3 | wt)) }
func (b pb) int(num int, v int64) pb {
	return b.tag(num, wireVarint).varint(uint64(v))
}
func (b pb) bytes(num int, v []byte) pb {
	return append(b.tag(num, wireBytes).varint(uint64(len(v))), v...)
}
func (b pb) str(num int, s string) pb { return b.bytes(num, []byte(s)) }

// ONNX element types.
const (
	tFloat = 1
	tInt64 = 7
)

// valueInfo is a graph input or output: name, element type, dims (-1 =
// symbolic).
func valueInfo(name string, elem int, dims ...int64) pb {
	var shape pb
	for i, d := range dims {
		var dim pb
		if d < 0 {
			dim = dim.str(2, name+"_d"+string(rune('0'+i)))
		} else {
			dim = dim.int(1, d)
		}
		shape = shape.bytes(1, dim)
	}
	tensor := pb{}.int(1, int64(elem)).bytes(2, shape)
	typ := pb{}.bytes(1, tensor)
	return pb{}.str(1, name).bytes(2, typ)
}

// node is a NodeProto with optional attributes.
func node(op string, in, out []string, attrs ...pb) pb {
	var b pb
	for _, s := range in {
		b = b.str(1, s)
	}
	for _, s := range out {
		b = b.str(2, s)
	}
	b = b.str(3, op+"_"+out[0]).str(4, op)
	for _, a := range attrs {
		b = b.bytes(5, a)
	}
	return b
}

// intAttr is an INT attribute (AttributeProto type 2).
func intAttr(name string, v int64) pb { return pb{}.str(1, name).int(3, v).int(20, 2) }

// floatInit and int64Init are initializers (TensorProto with raw_data).
func floatInit(name string, dims []int64, vals ...float32) pb {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return tensorInit(name, tFloat, dims, raw)
}

func int64Init(name string, dims []int64, vals ...int64) pb {
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return tensorInit(name, tInt64, dims, raw)
}

func tensorInit(name string, elem int, dims []int64, raw []byte) pb {
	var b pb
	for _, d := range dims {
		b = b.int(1, d)
	}
	return b.int(2, int64(elem)).str(8, name).bytes(9, raw)
}

// model assembles a ModelProto (opset 13).
func model(nodes, inits, inputs, outputs []pb, meta map[string]string) []byte {
	var g pb
	for _, n := range nodes {
		g = g.bytes(1, n)
	}
	g = g.str(2, "test")
	for _, t := range inits {
		g = g.bytes(5, t)
	}
	for _, v := range inputs {
		g = g.bytes(11, v)
	}
	for _, v := range outputs {
		g = g.bytes(12, v)
	}
	m := pb{}.int(1, 7).str(2, "govline-ivr-test")
	m = m.bytes(7, g)
	m = m.bytes(8, pb{}.str(1, "").int(2, 13))
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m = m.bytes(14, pb{}.str(1, k).str(2, meta[k]))
	}
	return m
}

// identityModel is the smallest useful model: y = x.
func identityModel(meta map[string]string) []byte {
	return model(
		[]pb{node("Identity", []string{"x"}, []string{"y"})}, nil,
		[]pb{valueInfo("x", tFloat, -1)}, []pb{valueInfo("y", tFloat, -1)}, meta)
}

// toneVoiceModel is a piper-shaped VITS model (inputs input [1,N] int64,
// input_lengths [1], scales [3]; output [1,1,T] float) whose "speech" is
// sin(1.7 × phoneme id) / 2, each phoneme sequence repeated 300 times: a
// loud signal whose length follows the text, made by the real
// onnxruntime inside sherpa-onnx.
func toneVoiceModel(rate int) []byte {
	meta := map[string]string{
		"model_type": "vits", "comment": "piper", "language": "Romanian", "voice": "ro",
		"sample_rate": strconv.Itoa(rate), "n_speakers": "1", "has_espeak": "1", "add_blank": "1",
	}
	nodes := []pb{
		node("Cast", []string{"input"}, []string{"xf"}, intAttr("to", tFloat)),
		node("Mul", []string{"xf", "k"}, []string{"y"}),
		node("Sin", []string{"y"}, []string{"s"}),
		node("Mul", []string{"s", "amp"}, []string{"s2"}),
		node("Tile", []string{"s2", "reps"}, []string{"t"}),
		node("Unsqueeze", []string{"t", "axes"}, []string{"output"}),
	}
	inits := []pb{
		floatInit("k", nil, 1.7),
		floatInit("amp", nil, 0.5),
		int64Init("reps", []int64{2}, 1, 300),
		int64Init("axes", []int64{1}, 1),
	}
	inputs := []pb{valueInfo("input", tInt64, 1, -1), valueInfo("input_lengths", tInt64, 1), valueInfo("scales", tFloat, 3)}
	outputs := []pb{valueInfo("output", tFloat, 1, 1, -1)}
	return model(nodes, inits, inputs, outputs, meta)
}

// writeFile writes b to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// whisperMetaFor returns complete whisper encoder metadata (the values of
// whisper tiny's sherpa-onnx export) knowing langs.
func whisperMetaFor(langs ...string) map[string]string {
	m := map[string]string{}
	for _, k := range whisperMeta {
		m[k] = "1"
	}
	m["is_multilingual"] = "0"
	if len(langs) > 0 {
		m["is_multilingual"] = "1"
		codes, toks := "", ""
		for i, l := range langs {
			if i > 0 {
				codes += ","
				toks += ","
			}
			codes += l
			toks += strconv.Itoa(50259 + i)
		}
		m["all_language_codes"] = codes
		m["all_language_tokens"] = toks
	}
	return m
}
