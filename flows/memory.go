package flows

import (
	"fmt"
	"runtime/metrics"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// memCheckEvery is how many instructions pass between two looks at the
// heap (a power of two minus one, as a mask).
const memCheckEvery = 1<<14 - 1

const heapMetric = "/memory/classes/heap/objects:bytes"

// memGuard bounds what a call's Lua values hold. Measuring a state means
// walking it, so the guard first looks at the process heap (cheap): only
// when the heap grew by more than the call's allowance since the last
// look does it walk this call's state (globals, registry, the locals of
// every active function, upvalues) and stop the call if that is over the
// allowance. Between two looks a flow runs memCheckEvery instructions,
// each of which can add at most a few dozen bytes (strings are bounded
// apart, see charge), so a call holds at most about Memory + 1 MiB.
type memGuard struct {
	limit  int64
	base   uint64 // heap at the last look
	sample []metrics.Sample
}

func newMemGuard(limit int64) *memGuard {
	g := &memGuard{limit: limit, sample: []metrics.Sample{{Name: heapMetric}}}
	g.base = g.heap()
	return g
}

func (g *memGuard) heap() uint64 {
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return g.sample[0].Value.Uint64()
}

// check returns a limit error when the call's state holds more than the
// allowance.
func (g *memGuard) check(L *lua.LState) error {
	h := g.heap()
	if h < g.base || h-g.base < uint64(g.limit) {
		return nil
	}
	g.base = h // other calls may be growing the heap: look again only after more growth
	if n := stateSize(L, g.limit); n > g.limit {
		return &ScriptError{Msg: fmt.Sprintf("the flow holds more than %d bytes of data (runaway allocation?)", g.limit), Limit: true}
	}
	return nil
}

// stateSize estimates the bytes held by the values reachable from a Lua
// state, stopping once past limit.
func stateSize(L *lua.LState, limit int64) int64 {
	var size int64
	seen := map[any]struct{}{}
	var visit func(v lua.LValue)
	visit = func(v lua.LValue) {
		if size > limit || v == nil {
			return
		}
		switch v := v.(type) {
		case lua.LString:
			size += 16
			if len(v) == 0 {
				return
			}
			p := unsafe.StringData(string(v))
			if _, ok := seen[p]; ok {
				return
			}
			seen[p] = struct{}{}
			size += int64(len(v))
		case *lua.LTable:
			if _, ok := seen[v]; ok {
				return
			}
			seen[v] = struct{}{}
			size += 64
			v.ForEach(func(k, val lua.LValue) {
				size += 32
				visit(k)
				visit(val)
			})
			if v.Metatable != nil {
				visit(v.Metatable)
			}
		case *lua.LFunction:
			if _, ok := seen[v]; ok {
				return
			}
			seen[v] = struct{}{}
			size += 64
			for _, up := range v.Upvalues {
				if up != nil {
					visit(up.Value())
				}
			}
		}
	}
	visit(L.G.Global)
	visit(L.G.Registry)
	for level := 0; size <= limit; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		for n := 1; ; n++ {
			name, v := L.GetLocal(dbg, n)
			if name == "" {
				break
			}
			visit(v)
		}
	}
	return size
}
