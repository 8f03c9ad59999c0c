package flows

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
	"unsafe"

	lua "github.com/yuin/gopher-lua"

	"github.com/govline/ivr/flows/internal/luapm"
)

// Removed from the base library: loading code from files or strings,
// the garbage collector, function environments, the raw print.
var removedBase = []string{"dofile", "loadfile", "load", "loadstring", "collectgarbage",
	"getfenv", "setfenv", "newproxy", "module", "_GOPHER_LUA_VERSION", "print", "gcinfo"}

// newState builds the call's sandboxed Lua state: base (reduced), string,
// table, math, a reduced os, the flow API, and the limits.
//
// The functions of the libraries and of the API are the same for every
// call: they are made once, in a template state that never runs
// (libTemplate), and find their call through the state's context
// (callOf). A call's state gets tables of its own (the globals, string,
// table, math, os, kb, ticket, hours, log, _LOADED) holding those
// functions, so what a flow changes in them stays in its call.
func newState(c *call) *lua.LState {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       c.lim.CallStack,
		RegistrySize:        128,
		RegistryMaxSize:     c.lim.Registry,
		RegistryGrowStep:    512,
		MinimizeStackMemory: true,
	})
	copyLibs(libTemplate(), L)
	registerCall(L, c)
	L.SetContext(c.hook)
	return L
}

// callOf is the call whose state L is (newState sets the hook, which
// knows its call, as the state's context).
func callOf(L *lua.LState) *call { return L.Context().(*hook).c }

var template struct {
	once sync.Once
	L    *lua.LState
}

// libTemplate is the state that holds the shared functions: built once,
// never run, never changed after it is built (copyLibs only reads it).
func libTemplate() *lua.LState {
	template.once.Do(func() {
		L := lua.NewState(lua.Options{SkipOpenLibs: true, RegistrySize: 128, MinimizeStackMemory: true})
		for _, lib := range []struct {
			name string
			fn   lua.LGFunction
		}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
			L.Push(L.NewFunction(lib.fn))
			L.Push(lua.LString(lib.name))
			L.Call(1, 0)
		}
		g := L.G.Global
		for _, n := range removedBase {
			g.RawSetString(n, lua.LNil)
		}
		strTbl := L.GetGlobal("string").(*lua.LTable)
		strTbl.RawSetString("dump", lua.LNil)
		// The loaded-modules registry of the base library must not expose
		// the removed functions either.
		if loaded, ok := L.GetField(L.Get(lua.RegistryIndex), "_LOADED").(*lua.LTable); ok {
			loaded.RawSetString("_G", g)
		}
		openOS(L)
		guardStrings(L)
		registerAPI(L)
		template.L = L
	})
	return template.L
}

// copyLibs gives L copies of the template's global table and of every
// table reachable from it and from its loaded-modules registry (the same
// table twice is copied once, so string.__index is string again), holding
// the template's functions; and string values get L's string table as
// their metatable, as lua.OpenString does.
func copyLibs(t, L *lua.LState) {
	copies := map[*lua.LTable]*lua.LTable{t.G.Global: L.G.Global}
	var copyTable func(src *lua.LTable) *lua.LTable
	fill := func(dst, src *lua.LTable) {
		src.ForEach(func(k, v lua.LValue) {
			if tv, ok := v.(*lua.LTable); ok {
				v = copyTable(tv)
			}
			dst.RawSet(k, v)
		})
	}
	copyTable = func(src *lua.LTable) *lua.LTable {
		if dst, ok := copies[src]; ok {
			return dst
		}
		n := 0
		src.ForEach(func(lua.LValue, lua.LValue) { n++ })
		dst := L.CreateTable(0, n)
		copies[src] = dst
		fill(dst, src)
		return dst
	}
	fill(L.G.Global, t.G.Global)
	if loaded, ok := t.G.Registry.RawGetString("_LOADED").(*lua.LTable); ok {
		L.G.Registry.RawSetString("_LOADED", copyTable(loaded))
	}
	L.SetMetatable(lua.LString(""), L.GetGlobal("string"))
}

// openOS installs os with time, date and clock only; time() and date()
// without a time use the services' clock (so tests can fix it).
func openOS(L *lua.LState) {
	L.Push(L.NewFunction(lua.OpenOs))
	L.Push(lua.LString(lua.OsLibName))
	L.Call(1, 0)
	full := L.GetGlobal("os").(*lua.LTable)
	origTime := full.RawGetString("time").(*lua.LFunction)
	origDate := full.RawGetString("date").(*lua.LFunction)
	os := L.CreateTable(0, 3)
	os.RawSetString("clock", full.RawGetString("clock"))
	os.RawSetString("time", L.NewFunction(func(L *lua.LState) int {
		if L.GetTop() == 0 || L.Get(1) == lua.LNil {
			L.Push(lua.LNumber(callOf(L).svc.Now().Unix()))
			return 1
		}
		return origTime.GFunction(L)
	}))
	os.RawSetString("date", L.NewFunction(func(L *lua.LState) int {
		if L.GetTop() < 2 || L.Get(2) == lua.LNil {
			f := L.OptString(1, "%c")
			L.SetTop(0)
			L.Push(lua.LString(f))
			L.Push(lua.LNumber(callOf(L).svc.Now().Unix()))
		}
		return origDate.GFunction(L)
	}))
	L.SetGlobal("os", os)
	if loaded, ok := L.GetField(L.Get(lua.RegistryIndex), "_LOADED").(*lua.LTable); ok {
		loaded.RawSetString("os", os)
	}
}

// stringLimitPrefix starts the message of a string limit hit.
const stringLimitPrefix = "string limit:"

// charge counts n bytes of strings built by the call, and raises a limit
// error past the call's allowance or when one string is too long.
func (c *call) charge(L *lua.LState, n int64) {
	if n > int64(c.lim.MaxString) {
		L.RaiseError("%s a string of %d bytes, more than the %d a flow may build", stringLimitPrefix, n, c.lim.MaxString)
	}
	c.alloc += n
	if c.alloc > c.lim.Alloc {
		L.RaiseError("%s the flow built more than %d bytes of strings (runaway allocation?)", stringLimitPrefix, c.lim.Alloc)
	}
}

// guardStrings replaces the functions that build strings with versions
// that check the size before building, and counts what every string
// function returns; ".." is compiled into a call of concat!.
func guardStrings(L *lua.LState) {
	st := L.GetGlobal("string").(*lua.LTable)
	wrap := func(name string, pre func(c *call, L *lua.LState)) {
		orig, ok := st.RawGetString(name).(*lua.LFunction)
		if !ok {
			return
		}
		st.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			c := callOf(L)
			if pre != nil {
				pre(c, L)
			}
			// Called as a Lua function, not through GFunction: gmatch reads
			// its own upvalue.
			args := L.GetTop()
			L.Push(orig)
			for i := 1; i <= args; i++ {
				L.Push(L.Get(i))
			}
			L.Call(args, lua.MultRet)
			top := L.GetTop()
			n := top - args
			for i := args + 1; i <= top; i++ {
				if s, ok := L.Get(i).(lua.LString); ok {
					c.charge(L, int64(len(s)))
				}
			}
			return n
		}))
	}
	wrap("rep", func(c *call, L *lua.LState) {
		s, n := L.CheckString(1), L.CheckInt(2)
		if n > 0 {
			c.charge(L, int64(len(s))*int64(n)) // checked before it is built
			c.alloc -= int64(len(s)) * int64(n) // counted again below, once built
		}
	})
	wrap("format", func(c *call, L *lua.LState) {
		c.checkSize(L, formatBound(L))
	})
	wrap("gsub", func(c *call, L *lua.LState) {
		s := L.CheckString(1)
		c.checkPattern(L, s, L.CheckString(2), 0, L.OptInt(4, -1))
		switch repl := L.Get(3).(type) {
		case lua.LString:
			// each replacement is repl with captures expanded; captures
			// do not overlap, so %n adds at most len(s) per use
			bound := int64(len(s)) + int64(len(s)+1)*int64(len(repl)) + int64(strings.Count(string(repl), "%"))*int64(len(s))
			if bound > int64(c.lim.MaxString) {
				c.checkSize(L, gsubExact(L, s, string(repl)))
			}
		case *lua.LTable, *lua.LFunction:
			// wrap the replacement to count what it adds
			var added int64
			base := int64(len(s))
			L.Replace(3, L.NewFunction(func(L *lua.LState) int {
				var v lua.LValue
				if t, ok := repl.(*lua.LTable); ok {
					v = L.GetTable(t, L.Get(1))
				} else {
					n := L.GetTop()
					L.Push(repl)
					for i := 1; i <= n; i++ {
						L.Push(L.Get(i))
					}
					L.Call(n, 1)
					v = L.Get(-1)
				}
				if s, ok := v.(lua.LString); ok {
					added += int64(len(s))
					c.checkSize(L, base+added)
				}
				L.Push(v)
				return 1
			}))
		}
	})
	for _, name := range []string{"char", "lower", "upper", "reverse", "sub"} {
		wrap(name, nil)
	}
	// Pattern matching runs in Go, out of the instruction hook's reach: a
	// step-counting copy of the matcher runs first, on the same arguments,
	// and refuses a match that would take too long.
	wrap("find", func(c *call, L *lua.LState) {
		if L.GetTop() >= 4 && lua.LVAsBool(L.Get(4)) {
			return // plain find
		}
		s, pat := L.CheckString(1), L.CheckString(2)
		if pat != "" {
			c.checkPattern(L, s, pat, startIndex(s, L.OptInt(3, 1)), 1)
		}
	})
	wrap("match", func(c *call, L *lua.LState) {
		s, pat := L.CheckString(1), L.CheckString(2)
		off := L.OptInt(3, 1)
		if off < 0 {
			off = len(s) + off + 1
		}
		c.checkPattern(L, s, pat, max(off-1, 0), 1)
	})
	wrap("gmatch", func(c *call, L *lua.LState) {
		c.checkPattern(L, L.CheckString(1), L.CheckString(2), 0, -1)
	})

	tb := L.GetGlobal("table").(*lua.LTable)
	if orig, ok := tb.RawGetString("concat").(*lua.LFunction); ok {
		tb.RawSetString("concat", L.NewFunction(func(L *lua.LState) int {
			c := callOf(L)
			t := L.CheckTable(1)
			sep := L.OptString(2, "")
			i, j := L.OptInt(3, 1), L.OptInt(4, t.Len())
			var n int64
			for k := i; k <= j; k++ {
				switch v := t.RawGetInt(k).(type) {
				case lua.LString:
					n += int64(len(v))
				case lua.LNumber:
					n += 24
				}
				if k < j {
					n += int64(len(sep))
				}
				if n > int64(c.lim.MaxString) {
					break
				}
			}
			c.charge(L, n)
			return orig.GFunction(L)
		}))
	}

	L.SetGlobal(concatFn, L.NewFunction(func(L *lua.LState) int {
		a, b := L.Get(1), L.Get(2)
		if lua.LVCanConvToString(a) && lua.LVCanConvToString(b) {
			as, bs := lua.LVAsString(a), lua.LVAsString(b)
			callOf(L).charge(L, int64(len(as))+int64(len(bs)))
			L.Push(lua.LString(as + bs))
			return 1
		}
		for _, v := range []lua.LValue{a, b} {
			if mm := L.GetMetaField(v, "__concat"); mm != lua.LNil {
				L.Push(mm)
				L.Push(a)
				L.Push(b)
				L.Call(2, 1)
				return 1
			}
		}
		bad := a
		if lua.LVCanConvToString(a) {
			bad = b
		}
		L.RaiseError("attempt to concatenate a %s value", bad.Type().String())
		return 0
	}))
}

// checkPattern runs the step-counting matcher on a pattern function's
// arguments, charging the call's pattern allowance, and raises a limit
// error when the match would take more than what is left. A malformed
// pattern is left to the real function, which says what is wrong.
func (c *call) checkPattern(L *lua.LState, s, pat string, offset, limit int) {
	if offset > len(s) {
		return
	}
	_, used, err := luapm.Find(pat, unsafe.Slice(unsafe.StringData(s), len(s)), offset, limit, int(c.patSteps))
	c.patSteps -= int64(used)
	if errors.Is(err, luapm.ErrTooComplex) {
		L.RaiseError("%s pattern %q needs more than the %d matching steps left to this call", patternLimitPrefix, pat, c.lim.PatternSteps)
	}
}

// patternLimitPrefix starts the message of a pattern limit hit.
const patternLimitPrefix = "pattern limit:"

// startIndex is string.find's start position (gopher-lua's rule).
func startIndex(s string, i int) int {
	if i != 0 {
		i--
	}
	if i < 0 {
		i = len(s) + i + 1
	}
	return max(0, i)
}

// checkSize raises the string limit error when n is more than one string
// may hold, without counting it.
func (c *call) checkSize(L *lua.LState, n int64) {
	if n > int64(c.lim.MaxString) {
		L.RaiseError("%s a string of %d bytes or more, more than the %d a flow may build", stringLimitPrefix, n, c.lim.MaxString)
	}
}

var fmtSpec = regexp.MustCompile(`%[-+ #0]*(\d*)(?:\.(\d*))?[a-zA-Z%]`)

// formatBound is an upper bound of string.format's result: the format,
// the arguments as strings, and each spec's width and precision.
func formatBound(L *lua.LState) int64 {
	f := L.CheckString(1)
	n := int64(len(f))
	for _, m := range fmtSpec.FindAllStringSubmatch(f, -1) {
		var w, p int64
		fmt.Sscan(m[1], &w)
		fmt.Sscan(m[2], &p)
		n += w + p + 32
	}
	for i := 2; i <= L.GetTop(); i++ {
		n += int64(len(L.Get(i).String())) + 32
	}
	return n
}

// gsubExact counts the matches (a replacement by "" builds no more than
// s) to bound a string replacement more closely.
func gsubExact(L *lua.LState, s, repl string) int64 {
	pat := L.CheckString(2)
	count := int64(len(s)) + 1 // a bound for patterns with magic characters
	if !strings.ContainsAny(pat, "^$()%.[]*+-?") && pat != "" {
		count = int64(strings.Count(s, pat))
	}
	return int64(len(s)) + count*int64(len(repl)) + int64(strings.Count(repl, "%"))*int64(len(s))
}

// moduleName is what require accepts: dotted names of files under the
// flows folder ("lib.menu" is lib/menu.lua).
var moduleName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// modulePath is the file of a module: "lib.menu" is lib/menu.lua.
func modulePath(name string) string { return path.Join(strings.Split(name, ".")...) + ".lua" }

// require loads a module of the flow's version, once per call.
func (c *call) require(L *lua.LState) int {
	name := L.CheckString(1)
	if !moduleName.MatchString(name) {
		L.ArgError(1, fmt.Sprintf("module name %q: use dotted names of files in the flows folder, such as \"lib.menu\"", name))
	}
	if v, ok := c.modules[name]; ok {
		L.Push(v)
		return 1
	}
	file := modulePath(name)
	m, ok := c.v.files[file]
	if !ok {
		L.RaiseError("module %q not found (no %s in the flows folder)", name, file)
	}
	if c.modules == nil {
		c.modules = map[string]lua.LValue{}
	}
	c.modules[name] = lua.LTrue // a cycle sees true, as in Lua
	L.Push(L.NewFunctionFromProto(m.proto))
	L.Call(0, 1)
	v := L.Get(-1)
	if v == lua.LNil {
		v = lua.LTrue
	}
	c.modules[name] = v
	L.Push(v)
	return 1
}
