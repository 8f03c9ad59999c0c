package sherpa

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// sherpa-onnx does not return an error for a model file it cannot use: a
// truncated or corrupt .onnx makes onnxruntime throw a C++ exception that
// nothing catches (the process aborts), and a model without the metadata
// sherpa-onnx reads (a raw piper voice, a whisper export from another tool,
// the wrong file in the folder) makes it call exit(-1). So every model file
// is read here first, in Go: the ONNX protobuf must be whole (every field
// inside the file, the graph's nodes and initializers too) and its
// metadata_props must hold the keys sherpa-onnx requires for that kind of
// model. Only then is the file handed to sherpa-onnx.

// ErrBadModel wraps the error for a model file that is unreadable,
// truncated, not an ONNX model, or lacks the metadata sherpa-onnx needs.
var ErrBadModel = errors.New("sherpa: unusable model file")

// onnxInfo is what checkONNX learned about a model file.
type onnxInfo struct {
	Meta  map[string]string // metadata_props
	Nodes int               // graph nodes
	Size  int64
}

// protobuf wire types.
const (
	wireVarint = 0
	wire64     = 1
	wireBytes  = 2
	wire32     = 5
)

// ONNX field numbers (onnx.proto3).
const (
	modelIRVersion = 1
	modelGraph     = 7
	modelOpset     = 8
	modelMetadata  = 14
	graphNode      = 1
	graphInit      = 5
	entryKey       = 1
	entryValue     = 2
)

// maxMetaValue bounds one metadata string (whisper's largest, the language
// token list, is a few KB).
const maxMetaValue = 1 << 20

// pbReader walks protobuf fields of a byte range of a file without
// loading it (models are tens to hundreds of MB).
type pbReader struct {
	r        io.ReaderAt
	off, end int64
	b        [10]byte
}

// varint reads a base-128 varint at r.off.
func (p *pbReader) varint() (uint64, error) {
	n := int64(len(p.b))
	if p.end-p.off < n {
		n = p.end - p.off
	}
	if n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	k, err := p.r.ReadAt(p.b[:n], p.off)
	if k < int(n) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	var v uint64
	for i := 0; i < int(n); i++ {
		c := p.b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			p.off += int64(i + 1)
			return v, nil
		}
	}
	if n < int64(len(p.b)) {
		return 0, io.ErrUnexpectedEOF
	}
	return 0, errors.New("varint longer than 10 bytes")
}

// field reads the next field's number and wire type; for wireBytes it also
// reads the length and returns the payload's range [start, start+n), and
// leaves r.off after the payload. Every other wire type is skipped.
func (p *pbReader) field() (num int, wt int, start, n int64, err error) {
	at := p.off
	tag, err := p.varint()
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("field tag at byte %d: %w", at, err)
	}
	num, wt = int(tag>>3), int(tag&7)
	if num == 0 {
		return 0, 0, 0, 0, fmt.Errorf("field number 0 at byte %d", at)
	}
	switch wt {
	case wireVarint:
		if _, err := p.varint(); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("field %d at byte %d: %w", num, at, err)
		}
	case wire64, wire32:
		w := int64(8)
		if wt == wire32 {
			w = 4
		}
		if p.end-p.off < w {
			return 0, 0, 0, 0, fmt.Errorf("field %d at byte %d: %w", num, at, io.ErrUnexpectedEOF)
		}
		p.off += w
	case wireBytes:
		l, err := p.varint()
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("field %d at byte %d: %w", num, at, err)
		}
		if l > uint64(p.end-p.off) {
			return 0, 0, 0, 0, fmt.Errorf("field %d at byte %d: %d bytes announced, %d left: %w", num, at, l, p.end-p.off, io.ErrUnexpectedEOF)
		}
		start, n = p.off, int64(l)
		p.off += n
	default:
		return 0, 0, 0, 0, fmt.Errorf("field %d at byte %d: wire type %d is not valid protobuf", num, at, wt)
	}
	return num, wt, start, n, nil
}

// walk checks that [start, start+n) is a sequence of whole protobuf fields
// and calls fn (if not nil) for each length-delimited one.
func walk(r io.ReaderAt, start, n int64, fn func(num int, start, n int64) error) error {
	p := &pbReader{r: r, off: start, end: start + n}
	for p.off < p.end {
		num, wt, s, l, err := p.field()
		if err != nil {
			return err
		}
		if wt == wireBytes && fn != nil {
			if err := fn(num, s, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkONNX reads the ONNX model at path and checks that it is whole (the
// model, its graph and every node and initializer of the graph parse as
// protobuf and end inside the file) and that its metadata holds every key
// of need. It never loads more than one metadata value into memory.
func checkONNX(path string, need ...string) (*onnxInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrBadModel, path)
	}
	info, err := parseONNX(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%w: %s (%d bytes) is not a whole ONNX model (truncated or corrupt? unpack the release again): %v", ErrBadModel, path, st.Size(), err)
	}
	var missing []string
	for _, k := range need {
		if _, ok := info.Meta[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return info, fmt.Errorf("%w: %s lacks the metadata %q that sherpa-onnx reads (a model exported by another tool? use the sherpa-onnx release of it)", ErrBadModel, path, missing)
	}
	return info, nil
}

// parseONNX does the work of checkONNX on r of size bytes.
func parseONNX(r io.ReaderAt, size int64) (*onnxInfo, error) {
	if size == 0 {
		return nil, errors.New("empty file")
	}
	info := &onnxInfo{Meta: map[string]string{}, Size: size}
	var haveIR, haveGraph, haveOpset bool
	p := &pbReader{r: r, end: size}
	for p.off < p.end {
		num, wt, s, l, err := p.field()
		if err != nil {
			return nil, err
		}
		switch {
		case num == modelIRVersion && wt == wireVarint:
			haveIR = true
		case num == modelOpset && wt == wireBytes:
			haveOpset = true
		case num == modelGraph && wt == wireBytes:
			haveGraph = true
			err = walk(r, s, l, func(num int, s, l int64) error {
				switch num {
				case graphNode:
					info.Nodes++
					return walk(r, s, l, nil)
				case graphInit:
					return walk(r, s, l, nil)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("graph: %w", err)
			}
		case num == modelMetadata && wt == wireBytes:
			var key, val string
			err = walk(r, s, l, func(num int, s, l int64) error {
				if num != entryKey && num != entryValue {
					return nil
				}
				if l > maxMetaValue {
					return fmt.Errorf("metadata string of %d bytes", l)
				}
				b := make([]byte, l)
				if _, err := r.ReadAt(b, s); err != nil {
					return err
				}
				if num == entryKey {
					key = string(b)
				} else {
					val = string(b)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("metadata: %w", err)
			}
			info.Meta[key] = val
		}
	}
	if !haveIR {
		return nil, errors.New("no ir_version (not an ONNX model)")
	}
	if !haveGraph {
		return nil, errors.New("no graph (not an ONNX model)")
	}
	if !haveOpset {
		return nil, errors.New("no opset_import (truncated after the graph?)")
	}
	if info.Nodes == 0 {
		return nil, errors.New("the graph has no nodes")
	}
	return info, nil
}
