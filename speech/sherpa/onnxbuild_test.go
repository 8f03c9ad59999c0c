package sherpa

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

func axisAttr(v int64) pb { return intAttr("axis", v) }

// Token ids of the loudness whisper (fakeWhisperDir).
const (
	lwNoSpeech = 0
	lwDa       = 1
	lwNu       = 2
	lwEOT      = 3
	lwSOT      = 4
	lwEn       = 5
	lwRo       = 6
	lwTransc   = 7
	lwTransl   = 8
	lwNoTS     = 9
	lwVocab    = 10
)

// loudnessWhisper returns the encoder and decoder of a whisper-shaped
// model that the real sherpa-onnx runs through its whole whisper decoding
// (log-mel features, the token loop with its caches, the base64 token
// table): its encoder hands the loudest log-mel value to the decoder,
// which writes " da" when that is above threshold and " nu" when it is
// not, then ends. It hears loudness, not words (0.75 tells espeak's "da"
// at -22 dBFS from noise at -47 dBFS): it tests the path the audio takes,
// not recognition.
func loudnessWhisper(threshold float32) (enc, dec []byte) {
	onehot := func(id int) []float32 {
		v := make([]float32, lwVocab)
		v[id] = 10
		return v
	}
	meta := whisperMetaFor("en", "ro")
	for k, v := range map[string]string{
		"n_mels": "80", "n_text_layer": "1", "n_text_ctx": "64", "n_text_state": "4", "n_vocab": strconv.Itoa(lwVocab),
		"sot": strconv.Itoa(lwSOT), "eot": strconv.Itoa(lwEOT), "blank_id": "0", "translate": strconv.Itoa(lwTransl),
		"transcribe": strconv.Itoa(lwTransc), "no_timestamps": strconv.Itoa(lwNoTS), "no_speech": strconv.Itoa(lwNoSpeech),
		"sot_sequence": "4,5,7", "all_language_tokens": "5,6", "all_language_codes": "en,ro",
	} {
		meta[k] = v
	}
	enc = model(
		[]pb{
			node("ReduceMax", []string{"mel"}, []string{"m"}),
			node("Reshape", []string{"m", "kshape"}, []string{"n_layer_cross_k"}),
			node("Identity", []string{"n_layer_cross_k"}, []string{"n_layer_cross_v"}),
		},
		[]pb{int64Init("kshape", []int64{4}, 1, 1, 1, 1)},
		[]pb{valueInfo("mel", tFloat, 1, 80, -1)},
		[]pb{valueInfo("n_layer_cross_k", tFloat, 1, 1, 1, 1), valueInfo("n_layer_cross_v", tFloat, 1, 1, 1, 1)},
		meta)
	dec = model(
		[]pb{
			node("Reshape", []string{"in_n_layer_cross_k", "one"}, []string{"e"}),
			node("Greater", []string{"e", "thr"}, []string{"loud"}),
			node("Where", []string{"loud", "v_da", "v_nu"}, []string{"word"}),
			node("Equal", []string{"offset", "zero"}, []string{"first"}),
			node("Where", []string{"first", "word", "v_eot"}, []string{"v"}),
			node("Shape", []string{"tokens"}, []string{"tshape"}),
			node("Concat", []string{"tshape", "vshape"}, []string{"lshape"}, axisAttr(0)),
			node("Expand", []string{"v", "lshape"}, []string{"logits"}),
			node("Identity", []string{"in_n_layer_self_k_cache"}, []string{"out_n_layer_self_k_cache"}),
			node("Identity", []string{"in_n_layer_self_v_cache"}, []string{"out_n_layer_self_v_cache"}),
		},
		[]pb{
			int64Init("one", []int64{1}, 1),
			floatInit("thr", nil, threshold),
			floatInit("v_da", []int64{lwVocab}, onehot(lwDa)...),
			floatInit("v_nu", []int64{lwVocab}, onehot(lwNu)...),
			floatInit("v_eot", []int64{lwVocab}, onehot(lwEOT)...),
			int64Init("zero", nil, 0),
			int64Init("vshape", []int64{1}, lwVocab),
		},
		[]pb{
			valueInfo("tokens", tInt64, 1, -1),
			valueInfo("in_n_layer_self_k_cache", tFloat, 1, 1, 64, 4),
			valueInfo("in_n_layer_self_v_cache", tFloat, 1, 1, 64, 4),
			valueInfo("in_n_layer_cross_k", tFloat, 1, 1, 1, 1),
			valueInfo("in_n_layer_cross_v", tFloat, 1, 1, 1, 1),
			valueInfo("offset", tInt64, 1),
		},
		[]pb{
			valueInfo("logits", tFloat, 1, -1, lwVocab),
			valueInfo("out_n_layer_self_k_cache", tFloat, 1, 1, 64, 4),
			valueInfo("out_n_layer_self_v_cache", tFloat, 1, 1, 64, 4),
		},
		nil)
	return enc, dec
}

// loudnessWhisperDir lays the loudness whisper out as a release folder;
// its tokens are base64, as whisper's are.
func loudnessWhisperDir(t testing.TB, threshold float32) string {
	d := t.TempDir()
	enc, dec := loudnessWhisper(threshold)
	writeFile(t, d, "loud-encoder.onnx", enc)
	writeFile(t, d, "loud-decoder.onnx", dec)
	var b strings.Builder
	for id := range lwVocab {
		s := map[int]string{lwDa: " da", lwNu: " nu"}[id]
		if s == "" {
			s = "<|" + strconv.Itoa(id) + "|>"
		}
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s)) + " " + strconv.Itoa(id) + "\n")
	}
	writeFile(t, d, "loud-tokens.txt", []byte(b.String()))
	return d
}
