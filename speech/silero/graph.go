package silero

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// The batched graph: the silero v5 model rebuilt so that a batch of
// windows runs as a few large matrix products instead of one small
// convolution per window.
//
// The model file's graph takes a batch of windows [B, samples] and runs
// its STFT (a convolution with a fixed basis) and its four encoder
// convolutions window by window: onnxruntime's Conv loops over the batch,
// each window a product with 4 columns, so the cost per window stops
// falling at about 16 windows a batch. The math is small: per window four
// frames of the STFT, four convolutions of kernel 3 over 4, 4, 2 and 1
// frames, one LSTM step and a 1x1 convolution. Here the caller cuts the
// windows into their STFT frames (batchFrames), and the graph
// (batchedGraph) lays every frame of every window of the batch as a row:
// the STFT is one product [4B, L] x [L, 2*bins], each encoder convolution
// one product over the rows of its input frames side by side (im2col, the
// kernel's three taps made from shifted slices, the weights reordered to
// match), the LSTM one product over [x, h]. Same weights, same operations;
// only the summation order differs (TestBatchedGraphMatchesModel measures
// the probabilities against the model file's graph).
//
// An 8 kHz call on the 16 kHz branch needs its audio upsampled first
// (audio.Resampler: about 5 µs a frame, 8 µs a 32 ms window, against the
// batched model's 14 µs). The upsampling, the reflection that pads a window
// and the STFT are all linear, so with ModelOptions.FoldUpsampler the
// batched graph for 8 kHz streams (upsampledFront) takes the 8 kHz samples
// and applies their product, one matrix: each STFT frame of 256 samples at
// 16 kHz is a function of 176 samples at 8 kHz (128 and the resampler's 48
// of history), and its STFT is one product of those with a [258, 176]
// matrix, smaller than the [258, 256] basis. The resampler rounds its
// output to 16 bits, the product does not: that is the difference, and why
// the fold is an option (docs/benchmarks.md has the agreement).
//
// The weights are read from the model file (its two branches, 16 kHz and
// 8 kHz, are subgraphs of an If on the sr input), and the graph is written
// as an ONNX ModelProto that onnxruntime loads from memory.

// branch is one rate's weights in the model file.
type branch struct {
	rate       int
	frameLen   int // STFT frame (filter) length
	hop        int // STFT hop
	bins       int // frameLen/2 + 1
	shift      int // new samples per window
	context    int // samples of the previous window seen again
	basis      []float32
	enc        [4][]float32 // conv weights [out, in, 3]
	encB       [4][]float32
	encIn      [4]int
	encOut     [4]int
	wih, whh   []float32 // [512, 128], PyTorch gate order i, f, g, o
	bih, bhh   []float32
	decW, decB []float32 // [1, 128, 1], [1]
}

// window is the samples one inference sees.
func (b *branch) window() int { return b.shift + b.context }

// framesPerWindow is the number of STFT frames of a window (4 for both
// branches of silero v5).
const framesPerWindow = 4

// batchFrames writes window x (b.window() samples) as its STFT frames,
// framesPerWindow rows of b.frameLen, into dst: the window is extended by
// b.context samples reflected about its last one, as the model's Pad does.
func (b *branch) batchFrames(dst, x []float32) {
	w, l, hop := len(x), b.frameLen, b.hop
	for f := range framesPerWindow {
		row := dst[f*l : (f+1)*l]
		start := f * hop
		n := copy(row, x[min(start, w):])
		for j := n; j < l; j++ { // reflected: x[w-2-k] for padded sample w+k
			row[j] = x[w-2-(start+j-w)]
		}
	}
}

// front is how an engine's windows become the graph's input rows: the
// stream's samples (at rate) enter `shift` at a time, an inference reads
// the last `window` of them (a stream starts with `prefix` zeros: the
// history the first window reads before the call's first sample), and
// rows writes a window as framesPerWindow rows of rowLen.
type front struct {
	rate                  int
	shift, window, prefix int
	rowLen                int
	rows                  func(dst, x []float32)
	stft0, stft3          []float32 // [2*bins, rowLen]: the STFT of rows 0-2 and of row 3
	upsampled             bool
}

// plainFront feeds the branch's own windows: rows are the STFT frames
// (batchFrames) and the STFT is the basis.
func plainFront(b *branch) *front {
	return &front{rate: b.rate, shift: b.shift, window: b.window(), rowLen: b.frameLen, rows: b.batchFrames, stft0: b.basis, stft3: b.basis}
}

// upsampledFront feeds the 16 kHz branch b with 8 kHz samples, folding in
// the upsampler (l = 2, m = 1 and taps as audio.Resampler.Polyphase gives
// them): a window of 576 samples at 16 kHz is the upsampled 288 samples at
// 8 kHz and the 48 before them (the filter's history); row f holds the 176
// samples from 64·f (zeros past the window); its STFT frame is the matrix
// stft0 (rows 0 to 2: the same matrix, shifted by the hop) or stft3 (row
// 3, which reaches into the reflected padding) applied to the row.
func upsampledFront(b *branch, l, m int, taps [][]float32) (*front, error) {
	if b.rate != 16000 || l != 2 || m != 1 || len(taps) != 2 {
		return nil, fmt.Errorf("upsampler %d/%d for the %d Hz branch: want 2/1 for 16000", l, m, b.rate)
	}
	k := len(taps[0])
	hist := k - 1
	const down = 2
	w16 := b.window()                // 576
	rowLen := b.frameLen/down + hist // 176
	hop8 := b.hop / down             // 64
	f := &front{rate: 8000, shift: b.shift / down, window: w16/down + hist, prefix: hist, rowLen: rowLen, upsampled: true}
	if w16%down != 0 || b.hop%down != 0 || f.window > hop8*(framesPerWindow-1)+rowLen {
		return nil, errors.New("window sizes do not fold")
	}
	// a[i][t]: padded window sample i (16 kHz) from 8 kHz window sample t
	pad := b.context
	src := func(i int) int { // the window sample the padded sample i is
		if i < w16 {
			return i
		}
		return 2*(w16-1) - i // reflected about the last sample
	}
	mat := func(fr int) []float32 {
		out := make([]float32, 2*b.bins*rowLen)
		for r := range b.frameLen {
			i := fr*b.hop + r
			if i >= w16+pad {
				break
			}
			q := src(i)
			p, n := q%down, q/down
			for j, c := range taps[p] {
				t := n - j + hist - fr*hop8 // column in the row
				if t < 0 || t >= rowLen {
					continue // outside the row: never (the rows span every tap; TestUpsampledFrontMatchesResampler)
				}
				for bin := range 2 * b.bins {
					out[bin*rowLen+t] += b.basis[bin*b.frameLen+r] * c
				}
			}
		}
		return out
	}
	f.stft0, f.stft3 = mat(0), mat(framesPerWindow-1)
	f.rows = func(dst, x []float32) {
		for fr := range framesPerWindow {
			row := dst[fr*rowLen : (fr+1)*rowLen]
			n := copy(row, x[min(fr*hop8, len(x)):])
			clear(row[n:])
		}
	}
	return f, nil
}

// ---- reading the model file (protobuf wire format) ----

type pbField struct {
	num  int
	wire int
	v    uint64
	data []byte
}

func pbParse(b []byte) ([]pbField, error) {
	var out []pbField
	for len(b) > 0 {
		k, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("bad varint")
		}
		b = b[n:]
		f := pbField{num: int(k >> 3), wire: int(k & 7)}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b)
			if n <= 0 {
				return nil, errors.New("bad varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return nil, errors.New("short fixed64")
			}
			f.data, b = b[:8], b[8:]
		case 5:
			if len(b) < 4 {
				return nil, errors.New("short fixed32")
			}
			f.data, b = b[:4], b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return nil, errors.New("bad length")
			}
			f.data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return nil, fmt.Errorf("wire type %d", f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

// pbTensor is a float tensor of the model file.
type pbTensor struct {
	dims []int64
	data []float32
}

func parseTensor(b []byte) (pbTensor, error) {
	fs, err := pbParse(b)
	if err != nil {
		return pbTensor{}, err
	}
	var t pbTensor
	dtype := uint64(0)
	var raw []byte
	for _, f := range fs {
		switch {
		case f.num == 1 && f.wire == 0:
			t.dims = append(t.dims, int64(f.v))
		case f.num == 1 && f.wire == 2:
			for d := f.data; len(d) > 0; {
				v, n := binary.Uvarint(d)
				if n <= 0 {
					return t, errors.New("bad dims")
				}
				t.dims = append(t.dims, int64(v))
				d = d[n:]
			}
		case f.num == 2:
			dtype = f.v
		case f.num == 9:
			raw = f.data
		case f.num == 4 && f.wire == 2: // float_data, packed
			raw = f.data
		case f.num == 4 && f.wire == 5:
			raw = append(raw, f.data...)
		}
	}
	if dtype != 1 {
		return t, fmt.Errorf("tensor of type %d, want float", dtype)
	}
	t.data = make([]float32, len(raw)/4)
	for i := range t.data {
		t.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	n := int64(1)
	for _, d := range t.dims {
		n *= d
	}
	if n != int64(len(t.data)) {
		return t, fmt.Errorf("tensor %v with %d values", t.dims, len(t.data))
	}
	return t, nil
}

// constants collects the float Constant nodes of a graph and of its
// subgraphs, by output name (the model file names them after the
// PyTorch parameters, prefixed by the branch).
func constants(graph []byte, out map[string]pbTensor, sub func(attr string, g []byte) error) error {
	fs, err := pbParse(graph)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if f.num != 1 { // NodeProto
			continue
		}
		nf, err := pbParse(f.data)
		if err != nil {
			return err
		}
		var op, output string
		var attrs [][]byte
		for _, g := range nf {
			switch g.num {
			case 2:
				if output == "" {
					output = string(g.data)
				}
			case 4:
				op = string(g.data)
			case 5:
				attrs = append(attrs, g.data)
			}
		}
		for _, a := range attrs {
			af, err := pbParse(a)
			if err != nil {
				return err
			}
			var name string
			for _, g := range af {
				if g.num == 1 {
					name = string(g.data)
				}
			}
			for _, g := range af {
				switch {
				case op == "Constant" && g.num == 5: // value: a tensor
					if t, err := parseTensor(g.data); err == nil {
						out[output] = t
					}
				case g.num == 6 && sub != nil: // a subgraph
					if err := sub(name, g.data); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// readBranches reads the 16 kHz and 8 kHz branches' weights from the
// silero v5 model file's bytes.
func readBranches(model []byte) (map[int]*branch, error) {
	fs, err := pbParse(model)
	if err != nil {
		return nil, err
	}
	var graph []byte
	for _, f := range fs {
		if f.num == 7 {
			graph = f.data
		}
	}
	if graph == nil {
		return nil, errors.New("no graph")
	}
	var subs [][]byte
	if err := constants(graph, map[string]pbTensor{}, func(attr string, g []byte) error {
		if attr == "then_branch" || attr == "else_branch" {
			subs = append(subs, g)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := map[int]*branch{}
	for _, g := range subs {
		c := map[string]pbTensor{}
		if err := constants(g, c, nil); err != nil {
			return nil, err
		}
		get := func(suffix string) (pbTensor, error) {
			for name, t := range c {
				if strings.HasSuffix(name, "__"+suffix) || name == suffix {
					return t, nil
				}
			}
			return pbTensor{}, fmt.Errorf("no %s in the model", suffix)
		}
		var errs []error
		must := func(suffix string, dims ...int64) []float32 {
			t, err := get(suffix)
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			if len(dims) > 0 && fmt.Sprint(t.dims) != fmt.Sprint(dims) {
				errs = append(errs, fmt.Errorf("%s is %v, want %v", suffix, t.dims, dims))
			}
			return t.data
		}
		basis, err := get("stft.forward_basis_buffer")
		if err != nil {
			return nil, err
		}
		if len(basis.dims) != 3 || basis.dims[1] != 1 {
			return nil, fmt.Errorf("STFT basis %v", basis.dims)
		}
		b := &branch{frameLen: int(basis.dims[2]), basis: basis.data}
		b.hop = b.frameLen / 2
		b.bins = b.frameLen/2 + 1
		if int(basis.dims[0]) != 2*b.bins {
			return nil, fmt.Errorf("STFT basis %v", basis.dims)
		}
		switch b.frameLen {
		case 256:
			b.rate, b.shift, b.context = 16000, 512, 64
		case 128:
			b.rate, b.shift, b.context = 8000, 256, 32
		default:
			return nil, fmt.Errorf("STFT basis %v: neither the 16 nor the 8 kHz branch", basis.dims)
		}
		b.encIn = [4]int{b.bins, 128, 64, 64}
		b.encOut = [4]int{128, 64, 64, 128}
		for i := range 4 {
			p := fmt.Sprintf("encoder.%d.reparam_conv.", i)
			b.enc[i] = must(p+"weight", int64(b.encOut[i]), int64(b.encIn[i]), 3)
			b.encB[i] = must(p+"bias", int64(b.encOut[i]))
		}
		b.wih = must("decoder.rnn.weight_ih", 512, 128)
		b.whh = must("decoder.rnn.weight_hh", 512, 128)
		b.bih = must("decoder.rnn.bias_ih", 512)
		b.bhh = must("decoder.rnn.bias_hh", 512)
		b.decW = must("decoder.decoder.2.weight", 1, 128, 1)
		b.decB = must("decoder.decoder.2.bias", 1)
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("%d Hz branch: %w", b.rate, err)
		}
		out[b.rate] = b
	}
	if out[16000] == nil || out[8000] == nil {
		return nil, fmt.Errorf("the model has branches for %d rates, want 16000 and 8000", len(out))
	}
	return out, nil
}

// ---- writing the batched graph ----

func pbKey(num, wire int) []byte { return binary.AppendUvarint(nil, uint64(num<<3|wire)) }

func pbBytes(b []byte, num int, v []byte) []byte {
	b = append(b, pbKey(num, 2)...)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func pbInt(b []byte, num int, v int64) []byte {
	b = append(b, pbKey(num, 0)...)
	return binary.AppendUvarint(b, uint64(v))
}

type graphBuilder struct {
	nodes, inits [][]byte
	n            int
}

// op adds a node and returns its (first) output's name; attrs are
// AttributeProto messages.
func (g *graphBuilder) op(op string, ins []string, attrs ...[]byte) string {
	g.n++
	out := fmt.Sprintf("%s_%d", strings.ToLower(op), g.n)
	g.opTo(out, op, ins, attrs...)
	return out
}

func (g *graphBuilder) opTo(out, op string, ins []string, attrs ...[]byte) {
	var n []byte
	for _, in := range ins {
		n = pbBytes(n, 1, []byte(in))
	}
	n = pbBytes(n, 2, []byte(out))
	n = pbBytes(n, 4, []byte(op))
	for _, a := range attrs {
		n = pbBytes(n, 5, a)
	}
	g.nodes = append(g.nodes, n)
}

func attrInt(name string, v int64) []byte {
	a := pbBytes(nil, 1, []byte(name))
	a = pbInt(a, 3, v)
	return pbInt(a, 20, 2) // INT
}

func (g *graphBuilder) tensor(dtype int64, dims []int64, raw []byte) string {
	g.n++
	name := fmt.Sprintf("const_%d", g.n)
	var t []byte
	for _, d := range dims {
		t = pbInt(t, 1, d)
	}
	t = pbInt(t, 2, dtype)
	t = pbBytes(t, 8, []byte(name))
	t = pbBytes(t, 9, raw)
	g.inits = append(g.inits, t)
	return name
}

func (g *graphBuilder) f32(data []float32, dims ...int64) string {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return g.tensor(1, dims, raw)
}

func (g *graphBuilder) i64(data ...int64) string {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return g.tensor(7, []int64{int64(len(data))}, raw)
}

// i64Scalar is a rank-0 int64 (a Gather index).
func (g *graphBuilder) i64Scalar(v int64) string {
	raw := binary.LittleEndian.AppendUint64(nil, uint64(v))
	return g.tensor(7, nil, raw)
}

// valueInfo declares a float input or output; a dim below 0 is dynamic.
func valueInfo(name string, dims ...int64) []byte {
	var shape []byte
	for i, d := range dims {
		var dim []byte
		if d >= 0 {
			dim = pbInt(nil, 1, d)
		} else {
			dim = pbBytes(nil, 2, []byte(fmt.Sprintf("d%d", i)))
		}
		shape = pbBytes(shape, 1, dim)
	}
	tt := pbInt(nil, 1, 1) // float
	tt = pbBytes(tt, 2, shape)
	typ := pbBytes(nil, 1, tt)
	v := pbBytes(nil, 1, []byte(name))
	return pbBytes(v, 2, typ)
}

// Names of the batched graph's inputs and outputs.
const (
	bgFrames = "frames" // [4B, frameLen]: the windows' STFT frames (batchFrames)
	bgState  = "state"  // [2, B, 128]
	bgProb   = "output" // [B, 1]
	bgStateN = "stateN" // [2, B, 128]
)

// batchedGraph writes b's model as the batched graph, an ONNX ModelProto
// (opset 13), taking the rows of fr.
func batchedGraph(b *branch, fr *front) []byte {
	g := &graphBuilder{}
	gemm := func(x string, w []float32, rows, cols int, bias []float32) string {
		ins := []string{x, g.f32(w, int64(rows), int64(cols))}
		if bias != nil {
			ins = append(ins, g.f32(bias, int64(rows)))
		}
		return g.op("Gemm", ins, attrInt("transB", 1))
	}
	slice := func(x string, start, end, axis, step int64) string {
		return g.op("Slice", []string{x, g.i64(start), g.i64(end), g.i64(axis), g.i64(step)})
	}
	reshape := func(x string, shape ...int64) string { return g.op("Reshape", []string{x, g.i64(shape...)}) }
	concat := func(axis int64, xs ...string) string { return g.op("Concat", xs, attrInt("axis", axis)) }
	// im2col of a kernel-3 convolution with padding 1 over the frames
	// of each window: x [B*t, c] -> [B*tOut, 3c], the taps side by side.
	im2col := func(x string, t, c, stride int64) string {
		p := g.op("Pad", []string{reshape(x, -1, t, c), g.i64(0, 1, 0, 0, 1, 0)})
		var taps []string
		for k := range int64(3) {
			taps = append(taps, slice(p, k, k+t, 1, stride))
		}
		return reshape(concat(2, taps...), -1, 3*c)
	}
	// a conv weight [out, in, 3] as [out, 3*in], tap-major (im2col's order)
	tapMajor := func(w []float32, out, in int) []float32 {
		r := make([]float32, len(w))
		for o := range out {
			for i := range in {
				for k := range 3 {
					r[o*3*in+k*in+i] = w[o*in*3+i*3+k]
				}
			}
		}
		return r
	}
	// taps of a conv weight [out, in, 3], side by side: [out, len(taps)*in]
	pickTaps := func(w []float32, out, in int, taps ...int) []float32 {
		r := make([]float32, 0, out*in*len(taps))
		for o := range out {
			for _, k := range taps {
				for i := range in {
					r = append(r, w[o*in*3+i*3+k])
				}
			}
		}
		return r
	}

	bins := int64(b.bins)
	// STFT: rows [4B, L] x basis [2*bins, L]^T, magnitudes
	var s string
	if !fr.upsampled {
		s = gemm(bgFrames, fr.stft0, 2*b.bins, fr.rowLen, nil)
	} else { // rows 0-2 of each window through stft0, row 3 through stft3
		rl := int64(fr.rowLen)
		r := reshape(bgFrames, -1, framesPerWindow, rl)
		s012 := gemm(reshape(slice(r, 0, framesPerWindow-1, 1, 1), -1, rl), fr.stft0, 2*b.bins, fr.rowLen, nil)
		s3 := gemm(reshape(slice(r, framesPerWindow-1, framesPerWindow, 1, 1), -1, rl), fr.stft3, 2*b.bins, fr.rowLen, nil)
		s = reshape(concat(1, reshape(s012, -1, framesPerWindow-1, 2*bins), reshape(s3, -1, 1, 2*bins)), -1, 2*bins)
	}
	re, im := slice(s, 0, bins, 1, 1), slice(s, bins, 2*bins, 1, 1)
	mag := g.op("Sqrt", []string{g.op("Add", []string{g.op("Mul", []string{re, re}), g.op("Mul", []string{im, im})})})
	// encoder 0: 4 frames -> 4, stride 1
	e := g.op("Relu", []string{gemm(im2col(mag, 4, bins, 1), tapMajor(b.enc[0], 128, b.bins), 128, 3*b.bins, b.encB[0])})
	// encoder 1: 4 -> 2, stride 2
	e = g.op("Relu", []string{gemm(im2col(e, 4, 128, 2), tapMajor(b.enc[1], 64, 128), 64, 3*128, b.encB[1])})
	// encoder 2: 2 -> 1, stride 2: output frame 0 sees frames -1 (zero
	// padding), 0 and 1 through taps 0, 1, 2
	e = g.op("Relu", []string{gemm(reshape(e, -1, 2*64), pickTaps(b.enc[2], 64, 64, 1, 2), 64, 2*64, b.encB[2])})
	// encoder 3: 1 -> 1, stride 1: only the middle tap sees a frame
	e = g.op("Relu", []string{gemm(e, pickTaps(b.enc[3], 128, 64, 1), 128, 64, b.encB[3])})
	// LSTM step: gates = [x, h] W^T + b, PyTorch order i, f, g, o
	h := g.op("Gather", []string{bgState, g.i64Scalar(0)}, attrInt("axis", 0))
	c := g.op("Gather", []string{bgState, g.i64Scalar(1)}, attrInt("axis", 0))
	w := make([]float32, 0, 512*256)
	bias := make([]float32, 512)
	for r := range 512 {
		w = append(w, b.wih[r*128:(r+1)*128]...)
		w = append(w, b.whh[r*128:(r+1)*128]...)
		bias[r] = b.bih[r] + b.bhh[r]
	}
	gates := gemm(concat(1, e, h), w, 512, 256, bias)
	gi := g.op("Sigmoid", []string{slice(gates, 0, 128, 1, 1)})
	gf := g.op("Sigmoid", []string{slice(gates, 128, 256, 1, 1)})
	gg := g.op("Tanh", []string{slice(gates, 256, 384, 1, 1)})
	gO := g.op("Sigmoid", []string{slice(gates, 384, 512, 1, 1)})
	c2 := g.op("Add", []string{g.op("Mul", []string{gf, c}), g.op("Mul", []string{gi, gg})})
	h2 := g.op("Mul", []string{gO, g.op("Tanh", []string{c2})})
	g.opTo(bgStateN, "Concat", []string{reshape(h2, 1, -1, 128), reshape(c2, 1, -1, 128)}, attrInt("axis", 0))
	// decoder: ReLU, a 1x1 convolution to one channel, sigmoid
	g.opTo(bgProb, "Sigmoid", []string{gemm(g.op("Relu", []string{h2}), b.decW, 1, 128, b.decB)})

	var gr []byte
	for _, n := range g.nodes {
		gr = pbBytes(gr, 1, n)
	}
	gr = pbBytes(gr, 2, []byte(fmt.Sprintf("silero_v5_batched_%d", b.rate)))
	for _, t := range g.inits {
		gr = pbBytes(gr, 5, t)
	}
	gr = pbBytes(gr, 11, valueInfo(bgFrames, -1, int64(fr.rowLen)))
	gr = pbBytes(gr, 11, valueInfo(bgState, 2, -1, 128))
	gr = pbBytes(gr, 12, valueInfo(bgProb, -1, 1))
	gr = pbBytes(gr, 12, valueInfo(bgStateN, 2, -1, 128))

	m := pbInt(nil, 1, 7) // ir_version
	m = pbBytes(m, 2, []byte("govline-ivr"))
	m = pbBytes(m, 7, gr)
	op := pbBytes(nil, 1, nil)
	op = pbInt(op, 2, 13)
	return pbBytes(m, 8, op)
}
