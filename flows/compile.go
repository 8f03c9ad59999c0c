package flows

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"

	"github.com/govline/ivr/internal/editdist"
	"github.com/govline/ivr/tickets"
)

// Diagnostic is one problem found in a flow file. Col is 0 when only the
// line is known.
type Diagnostic struct {
	File string
	Line int
	Col  int
	Msg  string
}

// String formats the diagnostic as file:line:col: message (file:line:
// message when the column is unknown), the form editors jump to.
func (d Diagnostic) String() string {
	if d.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", d.File, d.Line, d.Msg)
}

// concatFn is the hidden global that every ".." of a flow calls after
// compilation, so that string growth is bounded (see Limits). The name is
// not a Lua identifier: a flow cannot name it by accident.
const concatFn = "concat!"

// maxSourceBytes bounds a flow file's size.
const maxSourceBytes = 1 << 20

// arity is the number of arguments an API function takes.
type arity struct{ min, max int } // max -1: any

// apiGlobals are the global functions a flow may call, with their arity.
var apiGlobals = map[string]arity{
	// the flow API
	"say": {1, 2}, "play": {1, 2}, "say_digits": {1, 2},
	"ask": {1, 1}, "ask_yes_no": {1, 2}, "ask_digits": {1, 1}, "ask_free": {1, 2},
	"transfer": {1, 2}, "hangup": {0, 1}, "set_language": {1, 1}, "tr": {1, 1},
	"conversation": {0, 0}, "operator": {0, 1}, "normalize": {1, 1},
	// the Lua base library, as the sandbox keeps it
	"assert": {1, -1}, "error": {0, 2}, "getmetatable": {1, 1}, "ipairs": {1, 1},
	"next": {1, 2}, "pairs": {1, 1}, "pcall": {1, -1}, "print": {0, -1},
	"rawequal": {2, 2}, "rawget": {2, 2}, "rawset": {3, 3}, "select": {1, -1},
	"setmetatable": {2, 2}, "tonumber": {1, 2}, "tostring": {1, 1}, "type": {1, 1},
	"unpack": {1, 3}, "xpcall": {2, 2}, "require": {1, 1},
}

// apiTables are the library tables and their functions with their arity.
var apiTables = map[string]map[string]arity{
	"kb":     {"search": {1, 2}, "get": {1, 1}},
	"ticket": {"open": {1, 1}, "note": {2, 2}, "lookup": {1, 1}, "valid": {1, 1}},
	"hours":  {"open": {0, 0}, "describe": {0, 0}, "next_open": {0, 0}},
	"log":    {"info": {1, 2}, "warn": {1, 2}, "error": {1, 2}, "debug": {1, 2}},
	"os":     {"time": {0, 1}, "date": {0, 2}, "clock": {0, 0}},
	"string": {"byte": {1, 3}, "char": {0, -1}, "find": {2, 4}, "format": {1, -1}, "gmatch": {2, 2},
		"gsub": {3, 4}, "len": {1, 1}, "lower": {1, 1}, "match": {2, 3}, "rep": {2, 2},
		"reverse": {1, 1}, "sub": {2, 3}, "upper": {1, 1}},
	"table": {"concat": {1, 4}, "insert": {2, 3}, "maxn": {1, 1}, "remove": {1, 2}, "sort": {1, 2}, "getn": {1, 1}},
	"math": {"abs": {1, 1}, "ceil": {1, 1}, "floor": {1, 1}, "max": {1, -1}, "min": {1, -1},
		"fmod": {2, 2}, "modf": {1, 1}, "random": {0, 2}, "randomseed": {1, 1}, "sqrt": {1, 1},
		"pow": {2, 2}, "exp": {1, 1}, "log": {1, 2}, "log10": {1, 1}, "huge": {0, 0}, "pi": {0, 0},
		"sin": {1, 1}, "cos": {1, 1}, "tan": {1, 1}, "asin": {1, 1}, "acos": {1, 1}, "atan": {1, 1},
		"atan2": {2, 2}, "sinh": {1, 1}, "cosh": {1, 1}, "tanh": {1, 1}, "deg": {1, 1}, "rad": {1, 1},
		"frexp": {1, 1}, "ldexp": {2, 2}},
}

// askFields are the fields of the tables the API functions take; a field
// not listed is a typo the linter reports (retires = 3).
var (
	askCommon  = []string{"retries", "timeout", "no_input", "no_match", "barge_in", "operator"}
	tableField = map[string][]string{
		"ask":         append([]string{"prompt", "options", "free", "confirm_below"}, askCommon...),
		"ask_digits":  append([]string{"prompt", "min", "max", "terminator", "confirm", "confirm_below", "inter_digit", "sensitive"}, askCommon...),
		"ticket.open": {"service", "description", "priority", "level", "classification", "articles", "personal"},
	}
	optField = map[string][]string{ // the options table, second argument
		"ask_yes_no": askCommon,
		"ask_free":   append([]string{"sensitive"}, askCommon...),
		"say":        {"barge_in"},
		"say_digits": {"barge_in"},
		"transfer":   {"ticket"},
		"kb.search":  {"limit", "service"},
	}
	// optionField are the fields of one option of ask{options = ...}.
	optionField = []string{"id", "key", "say", "synonyms"}
)

// checkFields reports unknown string keys of a table constructor (or of
// the table literal a name holds), and checks the values the linter can
// see: options of ask, min and max of ask_digits, services and priorities
// of ticket.open.
func (l *linter) checkFields(what string, e ast.Expr, known []string) {
	t := l.literal(e)
	if t == nil {
		return
	}
	l.unknownFields(what, t, known)
	field := func(name string) ast.Expr {
		for _, f := range t.Fields {
			if k, ok := f.Key.(*ast.StringExpr); ok && k.Value == name {
				return f.Value
			}
		}
		return nil
	}
	switch what {
	case "ask":
		if o := l.literal(field("options")); o != nil {
			l.checkOptions(o)
		}
	case "ask_digits":
		lo, okLo := number(field("min"))
		hi, okHi := number(field("max"))
		if okLo && okHi && lo > hi {
			l.report(t.Line(), "ask_digits: min = %v is more than max = %v: no answer can pass", lo, hi)
		}
		if s, ok := field("terminator").(*ast.StringExpr); ok && s.Value != "#" && s.Value != "*" && s.Value != "" {
			l.report(s.Line(), "ask_digits: terminator %q: want \"#\" or \"*\" (or \"\" for none)", s.Value)
		}
	case "ticket.open":
		if s, ok := field("service").(*ast.StringExpr); ok && !slices.Contains(tickets.Services, tickets.Service(s.Value)) {
			l.report(s.Line(), "ticket.open: unknown service %q%s (known: %s)", s.Value, didYouMean(s.Value, enumNames(tickets.Services)), strings.Join(enumNames(tickets.Services), ", "))
		}
		if s, ok := field("priority").(*ast.StringExpr); ok && !slices.Contains(tickets.Priorities, tickets.Priority(s.Value)) {
			l.report(s.Line(), "ticket.open: unknown priority %q%s (known: %s)", s.Value, didYouMean(s.Value, enumNames(tickets.Priorities)), strings.Join(enumNames(tickets.Priorities), ", "))
		}
	}
}

// unknownFields reports the string keys of t that are not known.
func (l *linter) unknownFields(what string, t *ast.TableExpr, known []string) {
	for _, f := range t.Fields {
		k, ok := f.Key.(*ast.StringExpr)
		if ok && !slices.Contains(known, k.Value) {
			l.report(k.Line(), "%s: unknown field %q%s (known: %s)", what, k.Value, didYouMean(k.Value, known), strings.Join(known, ", "))
		}
	}
}

// checkOptions checks a literal list of options: fields, one key each,
// no key or id twice.
func (l *linter) checkOptions(t *ast.TableExpr) {
	keys, ids := map[string]int{}, map[string]int{}
	for i, f := range t.Fields {
		o, ok := f.Value.(*ast.TableExpr)
		if !ok || f.Key != nil {
			continue
		}
		l.unknownFields(fmt.Sprintf("ask: options[%d]", i+1), o, optionField)
		for _, of := range o.Fields {
			k, ok := of.Key.(*ast.StringExpr)
			v, isStr := of.Value.(*ast.StringExpr)
			if !ok || !isStr {
				continue
			}
			switch k.Value {
			case "key":
				if !oneKey(v.Value) {
					l.report(v.Line(), "ask: options[%d].key %q is not one key: a caller chooses with one key (0-9, * or #)", i+1, v.Value)
				}
				if j, dup := keys[v.Value]; dup {
					l.report(v.Line(), "ask: options[%d] has the key %q of options[%d]", i+1, v.Value, j)
				}
				keys[v.Value] = i + 1
			case "id":
				if j, dup := ids[v.Value]; dup {
					l.report(v.Line(), "ask: options[%d] has the id %q of options[%d]", i+1, v.Value, j)
				}
				ids[v.Value] = i + 1
			}
		}
	}
}

// literal returns the table constructor e is, or the one the name e was
// assigned once in the file (local MENU = {...}), or nil.
func (l *linter) literal(e ast.Expr) *ast.TableExpr {
	switch e := e.(type) {
	case *ast.TableExpr:
		return e
	case *ast.IdentExpr:
		return l.tables[e.Value]
	}
	return nil
}

func number(e ast.Expr) (float64, bool) {
	n, ok := e.(*ast.NumberExpr)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	return f, err == nil
}

func enumNames[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// apiValues are globals that are values, not functions: reading them is
// fine, calling them is not.
var apiValues = []string{"call", "vars", "_G", "_VERSION"}

// compiled is one flow file ready to run.
type compiled struct {
	name     string // path relative to the flows folder, the chunk name in errors
	proto    *lua.FunctionProto
	requires []required // require("literal") calls, checked against the folder at load
}

// required is one require("name") with a literal name.
type required struct {
	name string
	line int
}

// compileFile reads, lints and compiles one file. name is how errors name
// it. The returned diagnostics are problems that refuse the file.
func compileFile(path, name string) (*compiled, []Diagnostic) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, []Diagnostic{{File: name, Line: 1, Msg: readError(err)}}
	}
	return compileSource(src, name)
}

func readError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// compileSource parses, lints, rewrites and compiles src.
func compileSource(src []byte, name string) (c *compiled, diags []Diagnostic) {
	defer func() {
		if p := recover(); p != nil { // the parser must not take the engine down
			c, diags = nil, []Diagnostic{{File: name, Line: 1, Msg: fmt.Sprintf("cannot compile: %v", p)}}
		}
	}()
	if len(src) > maxSourceBytes {
		return nil, []Diagnostic{{File: name, Line: 1, Msg: fmt.Sprintf("file is %d bytes, more than the %d a flow may have", len(src), maxSourceBytes)}}
	}
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil, []Diagnostic{syntaxDiagnostic(name, err)}
	}
	var reqs []required
	diags, reqs = lintChunk(name, chunk)
	if len(diags) > 0 {
		return nil, diags
	}
	rewriteConcat(chunk)
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		return nil, []Diagnostic{{File: name, Line: 1, Msg: strings.TrimSpace(err.Error())}}
	}
	return &compiled{name: name, proto: proto, requires: reqs}, nil
}

// syntaxDiagnostic turns a parse error into a diagnostic.
func syntaxDiagnostic(name string, err error) Diagnostic {
	var pe *parse.Error
	if errors.As(err, &pe) {
		msg := "syntax error: " + strings.TrimSpace(pe.Message)
		if pe.Token != "" {
			msg += fmt.Sprintf(" near '%s'", pe.Token)
		}
		line := pe.Pos.Line
		if line <= 0 { // at end of file
			line = 0
			msg = "syntax error at end of file: " + strings.TrimSpace(pe.Message)
		}
		return Diagnostic{File: name, Line: line, Col: pe.Pos.Column, Msg: msg}
	}
	// the lexer reports some errors as plain errors with "line:N(column:M)"
	msg := strings.TrimSpace(err.Error())
	d := Diagnostic{File: name, Line: 1, Msg: "syntax error: " + msg}
	var l, c int
	if i := strings.Index(msg, "line:"); i >= 0 {
		if n, _ := fmt.Sscanf(msg[i:], "line:%d(column:%d)", &l, &c); n >= 1 {
			d.Line, d.Col = l, c
		}
	}
	return d
}

// Lint checks flow files without running them: syntax errors, calls to
// functions that are neither part of the flow API nor defined in the file,
// unknown functions of the API tables (kb.serch), wrong argument counts
// where the call shows them, unknown fields of the API's tables, options
// (one key each, no key or id twice), min > max, unknown services and
// priorities, and require() of a module that is not a file of the flows
// folder. Paths may be files or folders (every *.lua under a folder; the
// folder is then the flows folder of its files). Diagnostics name files as
// given.
func Lint(paths ...string) []Diagnostic {
	var out []Diagnostic
	for _, p := range paths {
		files, root := []string{p}, filepath.Dir(p)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			files, root = nil, p
			_ = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() && path != p && skipDirs[d.Name()] {
					return filepath.SkipDir
				}
				if err == nil && !d.IsDir() && strings.HasSuffix(path, ".lua") {
					files = append(files, path)
				}
				return nil
			})
			sort.Strings(files)
		}
		for _, f := range files {
			c, diags := compileFile(f, f)
			out = append(out, diags...)
			if c != nil {
				out = append(out, missingModules(c, f, root)...)
			}
		}
	}
	return out
}

// missingModules reports the require()s of c whose module file is in
// neither root nor a folder above it (a module of lib/ may require
// "lib.other" from the flows folder).
func missingModules(c *compiled, file, root string) []Diagnostic {
	var out []Diagnostic
	for _, rq := range c.requires {
		m := filepath.FromSlash(modulePath(rq.name))
		found := false
		for dir := root; !found; {
			if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
				found = true
			}
			up := filepath.Dir(dir)
			if up == dir {
				break
			}
			dir = up
		}
		if !found {
			where := root
			if where == "." {
				where = "(the current folder)"
			}
			out = append(out, Diagnostic{File: file, Line: rq.line, Msg: fmt.Sprintf("require(%q): no %s in the flows folder %s", rq.name, modulePath(rq.name), where)})
		}
	}
	return out
}

// linter walks a chunk with its local scopes.
type linter struct {
	name    string
	globals map[string]bool // assigned somewhere in the file
	tables  map[string]*ast.TableExpr
	scopes  []map[string]bool
	diags   []Diagnostic
	reqs    []required
}

func lintChunk(name string, chunk []ast.Stmt) ([]Diagnostic, []required) {
	l := &linter{name: name, globals: map[string]bool{}, tables: tableLiterals(chunk)}
	collectGlobals(chunk, l.globals)
	l.push()
	l.stmts(chunk)
	sort.SliceStable(l.diags, func(i, j int) bool { return l.diags[i].Line < l.diags[j].Line })
	return l.diags, l.reqs
}

func (l *linter) push() { l.scopes = append(l.scopes, map[string]bool{}) }
func (l *linter) pop()  { l.scopes = l.scopes[:len(l.scopes)-1] }
func (l *linter) declare(names ...string) {
	for _, n := range names {
		l.scopes[len(l.scopes)-1][n] = true
	}
}
func (l *linter) isLocal(n string) bool {
	for i := len(l.scopes) - 1; i >= 0; i-- {
		if l.scopes[i][n] {
			return true
		}
	}
	return false
}

func (l *linter) report(line int, format string, a ...any) {
	l.diags = append(l.diags, Diagnostic{File: l.name, Line: line, Msg: fmt.Sprintf(format, a...)})
}

func (l *linter) block(stmts []ast.Stmt, names ...string) {
	l.push()
	l.declare(names...)
	l.stmts(stmts)
	l.pop()
}

func (l *linter) stmts(stmts []ast.Stmt) {
	for _, s := range stmts {
		l.stmt(s)
	}
}

func (l *linter) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		l.exprs(s.Lhs)
		l.exprs(s.Rhs)
	case *ast.LocalAssignStmt:
		if len(s.Names) == 1 && len(s.Exprs) == 1 {
			if _, ok := s.Exprs[0].(*ast.FunctionExpr); ok { // local function f: f is visible inside
				l.declare(s.Names...)
			}
		}
		l.exprs(s.Exprs)
		l.declare(s.Names...)
	case *ast.FuncCallStmt:
		l.expr(s.Expr)
	case *ast.DoBlockStmt:
		l.block(s.Stmts)
	case *ast.WhileStmt:
		l.expr(s.Condition)
		l.block(s.Stmts)
	case *ast.RepeatStmt:
		l.push()
		l.stmts(s.Stmts)
		l.expr(s.Condition)
		l.pop()
	case *ast.IfStmt:
		l.expr(s.Condition)
		l.block(s.Then)
		l.block(s.Else)
	case *ast.NumberForStmt:
		l.expr(s.Init)
		l.expr(s.Limit)
		if s.Step != nil {
			l.expr(s.Step)
		}
		l.block(s.Stmts, s.Name)
	case *ast.GenericForStmt:
		l.exprs(s.Exprs)
		l.block(s.Stmts, s.Names...)
	case *ast.FuncDefStmt:
		names := []string{}
		if s.Name.Method != "" {
			names = append(names, "self")
		}
		l.function(s.Func, names...)
	case *ast.ReturnStmt:
		l.exprs(s.Exprs)
	}
}

func (l *linter) function(f *ast.FunctionExpr, extra ...string) {
	names := slices.Clone(extra)
	if f.ParList != nil {
		names = append(names, f.ParList.Names...)
		if f.ParList.HasVargs {
			names = append(names, "arg")
		}
	}
	l.block(f.Stmts, names...)
}

func (l *linter) exprs(es []ast.Expr) {
	for _, e := range es {
		l.expr(e)
	}
}

func (l *linter) expr(e ast.Expr) {
	switch e := e.(type) {
	case *ast.AttrGetExpr:
		l.expr(e.Object)
		l.expr(e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				l.expr(f.Key)
			}
			l.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		l.call(e)
		if e.Func != nil {
			l.expr(e.Func)
		}
		if e.Receiver != nil {
			l.expr(e.Receiver)
		}
		l.exprs(e.Args)
	case *ast.LogicalOpExpr:
		l.expr(e.Lhs)
		l.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		l.expr(e.Lhs)
		l.expr(e.Rhs)
	case *ast.StringConcatOpExpr:
		l.expr(e.Lhs)
		l.expr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		l.expr(e.Lhs)
		l.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		l.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		l.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		l.expr(e.Expr)
	case *ast.FunctionExpr:
		l.function(e)
	}
}

// call checks one call: the function exists and gets a plausible number of
// arguments.
func (l *linter) call(c *ast.FuncCallExpr) {
	n, open := len(c.Args), false // open: the last argument may expand
	if n > 0 {
		switch c.Args[n-1].(type) {
		case *ast.FuncCallExpr, *ast.Comma3Expr:
			open = true
		}
	}
	check := func(what string, a arity) {
		name := strings.TrimSuffix(what, "()")
		if known, ok := tableField[name]; ok && n >= 1 {
			l.checkFields(name, c.Args[0], known)
		}
		if known, ok := optField[name]; ok && n >= 2 {
			l.checkFields(name, c.Args[1], known)
		}
		switch {
		case n < a.min && !open:
			l.report(c.Line(), "%s takes at least %d argument(s), got %d", what, a.min, n)
		case a.max >= 0 && n > a.max:
			l.report(c.Line(), "%s takes at most %d argument(s), got %d", what, a.max, n)
		}
	}
	switch f := c.Func.(type) {
	case *ast.IdentExpr:
		if l.isLocal(f.Value) || l.globals[f.Value] {
			return
		}
		if a, ok := apiGlobals[f.Value]; ok {
			check(f.Value+"()", a)
			if f.Value == "require" && n == 1 {
				if s, ok := c.Args[0].(*ast.StringExpr); ok {
					if !moduleName.MatchString(s.Value) {
						l.report(c.Line(), "require(%q): use the dotted name of a file in the flows folder, such as \"lib.menu\"", s.Value)
					} else {
						l.reqs = append(l.reqs, required{s.Value, c.Line()})
					}
				}
			}
			return
		}
		if _, ok := apiTables[f.Value]; ok || slices.Contains(apiValues, f.Value) {
			l.report(c.Line(), "%s is not a function", f.Value)
			return
		}
		l.report(c.Line(), "call to unknown function %s()%s", f.Value, suggest(f.Value))
	case *ast.AttrGetExpr:
		obj, ok := f.Object.(*ast.IdentExpr)
		key, ok2 := f.Key.(*ast.StringExpr)
		if !ok || !ok2 || l.isLocal(obj.Value) || l.globals[obj.Value] {
			return
		}
		members, ok := apiTables[obj.Value]
		if !ok {
			if obj.Value == "call" || obj.Value == "vars" {
				return
			}
			if _, isFn := apiGlobals[obj.Value]; isFn {
				l.report(c.Line(), "%s is a function, not a table", obj.Value)
				return
			}
			l.report(c.Line(), "call to %s.%s(): %s is not defined", obj.Value, key.Value, obj.Value)
			return
		}
		a, ok := members[key.Value]
		if !ok {
			var names []string
			for n := range members {
				names = append(names, n)
			}
			hint := ""
			if m := closest(key.Value, names); m != "" {
				hint = fmt.Sprintf(" (did you mean %s.%s?)", obj.Value, m)
			}
			l.report(c.Line(), "call to unknown function %s.%s()%s", obj.Value, key.Value, hint)
			return
		}
		check(obj.Value+"."+key.Value+"()", a)
	}
}

// suggest names an API function close to a misspelt one.
func suggest(name string) string {
	names := make([]string, 0, len(apiGlobals))
	for k := range apiGlobals {
		names = append(names, k)
	}
	if s := closest(name, names); s != "" {
		return fmt.Sprintf(" (did you mean %s?)", s)
	}
	return ""
}

// didYouMean is " (did you mean X?)" for the known name closest to a
// misspelt one, or "".
func didYouMean(name string, known []string) string {
	if s := closest(name, known); s != "" {
		return fmt.Sprintf(" (did you mean %s?)", s)
	}
	return ""
}

// closest is the name within two edits of name (the first of the nearest,
// alphabetically; a plural or singular counts as one edit), or "".
func closest(name string, names []string) string {
	best, bestD := "", 3
	for _, k := range names {
		if d := editdist.Strings(name, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if bestD > 2 {
		return ""
	}
	return best
}

// eachStmt calls fn for every statement of stmts and of the blocks and
// function definitions nested in them (not of function expressions).
func eachStmt(stmts []ast.Stmt, fn func(ast.Stmt)) {
	for _, s := range stmts {
		fn(s)
		switch s := s.(type) {
		case *ast.FuncDefStmt:
			eachStmt(s.Func.Stmts, fn)
		case *ast.DoBlockStmt:
			eachStmt(s.Stmts, fn)
		case *ast.WhileStmt:
			eachStmt(s.Stmts, fn)
		case *ast.RepeatStmt:
			eachStmt(s.Stmts, fn)
		case *ast.IfStmt:
			eachStmt(s.Then, fn)
			eachStmt(s.Else, fn)
		case *ast.NumberForStmt:
			eachStmt(s.Stmts, fn)
		case *ast.GenericForStmt:
			eachStmt(s.Stmts, fn)
		}
	}
}

// tableLiterals finds the names (local or global, at any depth) assigned
// exactly once in the chunk, to a table constructor: MENU in
// "local MENU = { ... }".
func tableLiterals(stmts []ast.Stmt) map[string]*ast.TableExpr {
	out := map[string]*ast.TableExpr{}
	count := map[string]int{}
	assign := func(names []string, exprs []ast.Expr) {
		for i, n := range names {
			count[n]++
			if i < len(exprs) {
				if t, ok := exprs[i].(*ast.TableExpr); ok {
					out[n] = t
				}
			}
		}
	}
	eachStmt(stmts, func(s ast.Stmt) {
		switch s := s.(type) {
		case *ast.LocalAssignStmt:
			assign(s.Names, s.Exprs)
		case *ast.AssignStmt:
			var names []string
			for _, e := range s.Lhs {
				id, _ := e.(*ast.IdentExpr)
				if id == nil {
					id = &ast.IdentExpr{}
				}
				names = append(names, id.Value)
			}
			assign(names, s.Rhs)
		}
	})
	for n, c := range count {
		if c != 1 {
			delete(out, n)
		}
	}
	return out
}

// collectGlobals records every global name the chunk assigns or defines
// (anywhere: a function defined later in the file may be called earlier).
func collectGlobals(stmts []ast.Stmt, into map[string]bool) {
	var walk func([]ast.Stmt)
	var walkExpr func(ast.Expr)
	walkExpr = func(e ast.Expr) {
		switch e := e.(type) {
		case *ast.FunctionExpr:
			walk(e.Stmts)
		case *ast.FuncCallExpr:
			for _, a := range e.Args {
				walkExpr(a)
			}
		case *ast.TableExpr:
			for _, f := range e.Fields {
				walkExpr(f.Value)
			}
		}
	}
	walk = func(stmts []ast.Stmt) {
		eachStmt(stmts, func(s ast.Stmt) {
			var exprs []ast.Expr
			switch s := s.(type) {
			case *ast.AssignStmt:
				for _, e := range s.Lhs {
					if id, ok := e.(*ast.IdentExpr); ok {
						into[id.Value] = true
					}
				}
				exprs = s.Rhs
			case *ast.LocalAssignStmt:
				exprs = s.Exprs
			case *ast.FuncDefStmt:
				if id, ok := s.Name.Func.(*ast.IdentExpr); ok {
					into[id.Value] = true
				}
			case *ast.FuncCallStmt:
				exprs = []ast.Expr{s.Expr}
			case *ast.ReturnStmt:
				exprs = s.Exprs
			}
			for _, e := range exprs {
				walkExpr(e)
			}
		})
	}
	walk(stmts)
}

// rewriteConcat replaces every a .. b with a call of the hidden concat
// function, which refuses a result longer than the call's string limit.
func rewriteConcat(stmts []ast.Stmt) {
	var st func(ast.Stmt)
	var ex func(ast.Expr) ast.Expr
	exs := func(es []ast.Expr) {
		for i := range es {
			es[i] = ex(es[i])
		}
	}
	sts := func(ss []ast.Stmt) {
		for _, s := range ss {
			st(s)
		}
	}
	ex = func(e ast.Expr) ast.Expr {
		switch e := e.(type) {
		case *ast.StringConcatOpExpr:
			call := &ast.FuncCallExpr{Func: &ast.IdentExpr{Value: concatFn}, Args: []ast.Expr{ex(e.Lhs), ex(e.Rhs)}, AdjustRet: true}
			call.SetLine(e.Line())
			call.SetLastLine(e.LastLine())
			call.Func.SetLine(e.Line())
			call.Func.SetLastLine(e.LastLine())
			return call
		case *ast.AttrGetExpr:
			e.Object, e.Key = ex(e.Object), ex(e.Key)
		case *ast.TableExpr:
			for _, f := range e.Fields {
				if f.Key != nil {
					f.Key = ex(f.Key)
				}
				f.Value = ex(f.Value)
			}
		case *ast.FuncCallExpr:
			if e.Func != nil {
				e.Func = ex(e.Func)
			}
			if e.Receiver != nil {
				e.Receiver = ex(e.Receiver)
			}
			exs(e.Args)
		case *ast.LogicalOpExpr:
			e.Lhs, e.Rhs = ex(e.Lhs), ex(e.Rhs)
		case *ast.RelationalOpExpr:
			e.Lhs, e.Rhs = ex(e.Lhs), ex(e.Rhs)
		case *ast.ArithmeticOpExpr:
			e.Lhs, e.Rhs = ex(e.Lhs), ex(e.Rhs)
		case *ast.UnaryMinusOpExpr:
			e.Expr = ex(e.Expr)
		case *ast.UnaryNotOpExpr:
			e.Expr = ex(e.Expr)
		case *ast.UnaryLenOpExpr:
			e.Expr = ex(e.Expr)
		case *ast.FunctionExpr:
			sts(e.Stmts)
		}
		return e
	}
	st = func(s ast.Stmt) {
		switch s := s.(type) {
		case *ast.AssignStmt:
			exs(s.Lhs)
			exs(s.Rhs)
		case *ast.LocalAssignStmt:
			exs(s.Exprs)
		case *ast.FuncCallStmt:
			s.Expr = ex(s.Expr)
		case *ast.DoBlockStmt:
			sts(s.Stmts)
		case *ast.WhileStmt:
			s.Condition = ex(s.Condition)
			sts(s.Stmts)
		case *ast.RepeatStmt:
			s.Condition = ex(s.Condition)
			sts(s.Stmts)
		case *ast.IfStmt:
			s.Condition = ex(s.Condition)
			sts(s.Then)
			sts(s.Else)
		case *ast.NumberForStmt:
			s.Init, s.Limit = ex(s.Init), ex(s.Limit)
			if s.Step != nil {
				s.Step = ex(s.Step)
			}
			sts(s.Stmts)
		case *ast.GenericForStmt:
			exs(s.Exprs)
			sts(s.Stmts)
		case *ast.FuncDefStmt:
			sts(s.Func.Stmts)
		case *ast.ReturnStmt:
			exs(s.Exprs)
		}
	}
	sts(stmts)
}
