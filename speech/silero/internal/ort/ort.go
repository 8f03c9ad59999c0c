// Package ort is a minimal binding of the onnxruntime C API: load a model
// once, read its inputs and outputs, and run it on tensors whose memory
// lives outside the Go heap. It calls the libonnxruntime.so that ships in
// github.com/k2-fsa/sherpa-onnx-go-linux (onnxruntime 1.17.1; this package
// asks for C API version 17, which every later library also serves).
//
// The library is the one sherpa-onnx links: this package imports that
// module for its link flags (its run path names the library in the module
// cache, and an installed ivrd finds it on LD_LIBRARY_PATH), so the process
// holds one copy of onnxruntime. The ready-made Go binding
// github.com/yalue/onnxruntime_go is not used: every version of it that
// downloads here asks for API version 20 or later, which onnxruntime 1.17
// refuses.
package ort

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "ort.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	_ "github.com/k2-fsa/sherpa-onnx-go-linux" // links libonnxruntime.so
)

var (
	initOnce sync.Once
	initErr  error
	version  string
)

func goErr(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

// Init finds the library and creates the process's onnxruntime
// environment (once). It returns the library's version.
func Init() (string, error) {
	initOnce.Do(func() {
		var v *C.char
		initErr = goErr(C.ort_init(&v))
		if v != nil {
			version = C.GoString(v)
		}
	})
	return version, initErr
}

// Element types of tensors.
const (
	Float32 = C.ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
	Int64   = C.ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64
)

// Session is a loaded model. Run may be called from one goroutine at a
// time per set of tensors; onnxruntime allows concurrent Runs on one
// session, but the users of this package run it from one goroutine.
type Session struct {
	p *C.OrtSession
}

// NewSession loads the model at path, run on threads intra-op threads.
func NewSession(path string, threads int) (*Session, error) {
	if _, err := Init(); err != nil {
		return nil, err
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	s := &Session{}
	if err := goErr(C.ort_new_session(cp, C.int(threads), &s.p)); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	return s, nil
}

// NewSessionBytes loads a model from its serialized form (an ONNX
// ModelProto), run on threads intra-op threads.
func NewSessionBytes(model []byte, threads int) (*Session, error) {
	if _, err := Init(); err != nil {
		return nil, err
	}
	if len(model) == 0 {
		return nil, errors.New("ort: empty model")
	}
	cm := C.CBytes(model)
	defer C.free(cm)
	s := &Session{}
	if err := goErr(C.ort_new_session_bytes(cm, C.size_t(len(model)), C.int(threads), &s.p)); err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the session.
func (s *Session) Close() {
	if s.p != nil {
		C.ort_release_session(s.p)
		s.p = nil
	}
}

// IO describes one input or output of a model.
type IO struct {
	Name  string
	Elem  int     // Float32, Int64, ...
	Shape []int64 // -1 for a dynamic dimension
}

func (io IO) String() string { return fmt.Sprintf("%s%v(elem %d)", io.Name, io.Shape, io.Elem) }

// Inputs and Outputs describe the model's inputs and outputs, in order.
func (s *Session) Inputs() ([]IO, error)  { return s.io(0) }
func (s *Session) Outputs() ([]IO, error) { return s.io(1) }

func (s *Session) io(output C.int) ([]IO, error) {
	var n C.size_t
	if err := goErr(C.ort_io_count(s.p, output, &n)); err != nil {
		return nil, err
	}
	out := make([]IO, n)
	for i := range out {
		var name *C.char
		var elem C.int
		var dims [8]C.int64_t
		nd := C.size_t(len(dims))
		if err := goErr(C.ort_io_info(s.p, output, C.size_t(i), &name, &elem, &dims[0], &nd)); err != nil {
			return nil, err
		}
		out[i].Name = C.GoString(name)
		C.free(unsafe.Pointer(name))
		out[i].Elem = int(elem)
		for _, d := range dims[:nd] {
			out[i].Shape = append(out[i].Shape, int64(d))
		}
	}
	return out, nil
}

// Buffer is memory outside the Go heap that tensors view.
type Buffer struct {
	p     unsafe.Pointer
	bytes int
}

// NewBuffer allocates n bytes (zeroed). Free releases them.
func NewBuffer(n int) *Buffer {
	return &Buffer{p: C.calloc(C.size_t(n), 1), bytes: n}
}

// Float32s and Int64s view the buffer.
func (b *Buffer) Float32s() []float32 { return unsafe.Slice((*float32)(b.p), b.bytes/4) }
func (b *Buffer) Int64s() []int64     { return unsafe.Slice((*int64)(b.p), b.bytes/8) }

// Free releases the memory; tensors over it must be released first.
func (b *Buffer) Free() {
	if b.p != nil {
		C.free(b.p)
		b.p = nil
	}
}

// Tensor is an onnxruntime value over the start of a Buffer.
type Tensor struct {
	v *C.OrtValue
}

// NewTensor views the start of b as a tensor of elem with shape.
func NewTensor(b *Buffer, elem int, shape ...int64) (*Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	size := int64(4)
	if elem == Int64 {
		size = 8
	}
	if n*size > int64(b.bytes) {
		return nil, fmt.Errorf("ort: tensor %v of %d-byte elements over a %d-byte buffer", shape, size, b.bytes)
	}
	cs := (*C.int64_t)(C.malloc(C.size_t(8 * max(1, len(shape)))))
	defer C.free(unsafe.Pointer(cs))
	dims := unsafe.Slice((*int64)(unsafe.Pointer(cs)), max(1, len(shape)))
	copy(dims, shape)
	t := &Tensor{}
	if err := goErr(C.ort_new_tensor(b.p, C.size_t(n*size), cs, C.size_t(len(shape)), C.int(elem), &t.v)); err != nil {
		return nil, err
	}
	return t, nil
}

// Close releases the tensor (not its buffer).
func (t *Tensor) Close() {
	if t != nil && t.v != nil {
		C.ort_release_value(t.v)
		t.v = nil
	}
}

// Names are input or output names in C memory, made once.
type Names struct {
	p **C.char
	n int
}

// NewNames copies names to C memory.
func NewNames(names ...string) *Names {
	p := (**C.char)(C.malloc(C.size_t(len(names)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	s := unsafe.Slice(p, len(names))
	for i, n := range names {
		s[i] = C.CString(n)
	}
	return &Names{p: p, n: len(names)}
}

// Run runs the session with in (named by inNames) and writes the outputs
// into out (named by outNames), whose tensors must have the outputs'
// shapes.
func (s *Session) Run(inNames *Names, in []*Tensor, outNames *Names, out []*Tensor) error {
	if len(in) != inNames.n || len(out) != outNames.n {
		return fmt.Errorf("ort: %d inputs for %d names, %d outputs for %d names", len(in), inNames.n, len(out), outNames.n)
	}
	var iv, ov [8]*C.OrtValue
	for i, t := range in {
		iv[i] = t.v
	}
	for i, t := range out {
		ov[i] = t.v
	}
	return goErr(C.ort_run(s.p, inNames.p, &iv[0], C.size_t(len(in)), outNames.p, &ov[0], C.size_t(len(out))))
}
