package flows

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// Text is one sentence a flow says in a fixed form, with its language and
// where it is written.
type Text struct {
	Lang string
	Text string
	File string
	Line int
}

// Texts returns the sentences the flows of the version serving new calls
// say in a fixed form, and those of its catalog (every language, without
// the sentences that have a %s to fill), each once: what a synthesizer can render before
// the first call needs it. A sentence is fixed when it is a literal: a
// language table {ro = "...", en = "..."}, a part {lang = "en", text =
// "..."}, or a string given to say, ask_yes_no, ask_free or as an ask's
// prompt, no_input or no_match (in the line's first language, lang).
// Sentences built at run time (a knowledge base answer, a number) are not.
func (r *Runtime) Texts(lang string) []Text {
	v := r.cur.Load()
	names := make([]string, 0, len(v.files))
	for n := range v.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Text
	for _, n := range names {
		src, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(n)))
		if err != nil {
			continue // changed under us: the next reload says so
		}
		out = append(out, textsOf(n, src, lang)...)
	}
	out = append(out, v.cat.Texts()...)
	return uniqueTexts(out)
}

// BuiltinTexts are the sentences of the shipped catalog without
// placeholders, in every language (those the engine says on its own: no
// input, no match, the operator hand-off...).
func BuiltinTexts() []Text { return uniqueTexts(DefaultCatalog().Texts()) }

func uniqueTexts(ts []Text) []Text {
	seen := map[[2]string]bool{}
	out := ts[:0]
	for _, t := range ts {
		k := [2]string{t.Lang, t.Text}
		if t.Text == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, t)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// textsOf finds the fixed sentences of one flow file (nil when it does not
// parse: lint says why).
func textsOf(name string, src []byte, lang string) (out []Text) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil
	}
	w := &textWalker{file: name, lang: lang}
	w.stmts(chunk)
	return w.out
}

// textWalker visits every expression of a chunk, collecting texts.
type textWalker struct {
	file, lang string
	out        []Text
}

func (w *textWalker) add(lang, s string, line int) {
	if strings.TrimSpace(s) != "" {
		w.out = append(w.out, Text{Lang: lang, Text: s, File: w.file, Line: line})
	}
}

func (w *textWalker) stmts(ss []ast.Stmt) {
	for _, s := range ss {
		w.stmt(s)
	}
}

func (w *textWalker) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		w.exprs(s.Lhs)
		w.exprs(s.Rhs)
	case *ast.LocalAssignStmt:
		w.exprs(s.Exprs)
	case *ast.FuncCallStmt:
		w.expr(s.Expr)
	case *ast.DoBlockStmt:
		w.stmts(s.Stmts)
	case *ast.WhileStmt:
		w.expr(s.Condition)
		w.stmts(s.Stmts)
	case *ast.RepeatStmt:
		w.stmts(s.Stmts)
		w.expr(s.Condition)
	case *ast.IfStmt:
		w.expr(s.Condition)
		w.stmts(s.Then)
		w.stmts(s.Else)
	case *ast.NumberForStmt:
		w.exprs([]ast.Expr{s.Init, s.Limit, s.Step})
		w.stmts(s.Stmts)
	case *ast.GenericForStmt:
		w.exprs(s.Exprs)
		w.stmts(s.Stmts)
	case *ast.FuncDefStmt:
		w.expr(s.Func)
	case *ast.ReturnStmt:
		w.exprs(s.Exprs)
	}
}

func (w *textWalker) exprs(es []ast.Expr) {
	for _, e := range es {
		w.expr(e)
	}
}

// spokenArg are the functions whose first argument, a plain string, is
// said in the line's language.
var spokenArg = map[string]bool{"say": true, "ask_yes_no": true, "ask_free": true}

// spokenField are the fields of ask and ask_digits said as they are.
var spokenField = map[string]bool{"prompt": true, "no_input": true, "no_match": true}

func (w *textWalker) expr(e ast.Expr) {
	switch e := e.(type) {
	case nil:
	case *ast.TableExpr:
		var lang, text *ast.StringExpr
		for _, f := range e.Fields {
			k, _ := f.Key.(*ast.StringExpr)
			v, isStr := f.Value.(*ast.StringExpr)
			switch {
			case k == nil && isStr && f.Key == nil:
				w.add(w.lang, v.Value, v.Line()) // an item of a list of parts
			case k == nil:
			case isStr && (k.Value == "ro" || k.Value == "en"):
				w.add(k.Value, v.Value, v.Line())
			case isStr && k.Value == "lang":
				lang = v
			case isStr && k.Value == "text":
				text = v
			case isStr && spokenField[k.Value]:
				w.add(w.lang, v.Value, v.Line())
			}
			w.expr(f.Key)
			w.expr(f.Value)
		}
		if lang != nil && text != nil {
			w.add(lang.Value, text.Value, text.Line())
		}
	case *ast.FuncCallExpr:
		if id, ok := e.Func.(*ast.IdentExpr); ok && spokenArg[id.Value] && len(e.Args) > 0 {
			if s, ok := e.Args[0].(*ast.StringExpr); ok {
				w.add(w.lang, s.Value, s.Line())
			}
		}
		w.expr(e.Func)
		w.expr(e.Receiver)
		w.exprs(e.Args)
	case *ast.AttrGetExpr:
		w.expr(e.Object)
		w.expr(e.Key)
	case *ast.LogicalOpExpr:
		w.expr(e.Lhs)
		w.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		w.expr(e.Lhs)
		w.expr(e.Rhs)
	case *ast.StringConcatOpExpr:
		// built at run time: not a fixed text (its parts are not
		// sentences of their own)
	case *ast.ArithmeticOpExpr:
		w.expr(e.Lhs)
		w.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		w.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		w.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		w.expr(e.Expr)
	case *ast.FunctionExpr:
		w.stmts(e.Stmts)
	}
}

// Spoken-length estimate of the embedded voice (espeak-ng at 150 words a
// minute), fitted by least squares on the 104 fixed sentences of the
// shipped main.lua and the runtime, rendered by it (root-mean-square error
// 0.34 s, worst 1.3 s): a letter or digit costs spokenPerChar, a pause
// mark (, ; : . ! ?) spokenPerPause.
const (
	spokenPerChar  = 80 * time.Millisecond
	spokenPerPause = 350 * time.Millisecond
	spokenBase     = 280 * time.Millisecond
)

// SpokenLength estimates how long the line's voice takes to say text.
func SpokenLength(text string) time.Duration {
	var chars, pauses int
	for _, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			chars++
		case strings.ContainsRune(",;:.!?", r):
			pauses++
		}
	}
	return spokenBase + time.Duration(chars)*spokenPerChar + time.Duration(pauses)*spokenPerPause
}

// DefaultMaxPrompt is the longest a fixed sentence should take to say
// before lint warns: a caller who waits politely hears it all before the
// line listens.
const DefaultMaxPrompt = 8 * time.Second

// LongPrompts warns about fixed sentences of the flow files under paths
// (files or folders), and of the catalog of a folder (catalog/*.toml, a
// %s counted as two digits), that take longer than max to say (estimated
// with SpokenLength): split them, or say the options only after a miss. A
// sentence whose line says "lint: long" in a comment is not reported (a
// list of options said after a miss is long by design).
func LongPrompts(max time.Duration, paths ...string) []Diagnostic {
	var out []Diagnostic
	for _, p := range paths {
		if st, err := os.Stat(filepath.Join(p, CatalogDir)); err != nil || !st.IsDir() {
			continue
		}
		cat, diags := LoadCatalog(p)
		if len(diags) > 0 {
			continue // Lint reports them
		}
		lines := map[string][]string{}
		for _, t := range cat.sentences(p) {
			if lines[t.File] == nil {
				src, _ := os.ReadFile(t.File)
				lines[t.File] = strings.Split(string(src), "\n")
			}
			if l := lines[t.File]; t.Line > 0 && t.Line <= len(l) && strings.Contains(l[t.Line-1], "lint: long") {
				continue
			}
			if d := SpokenLength(fill(t.Text, []any{"12", "12", "12"})); d > max {
				out = append(out, Diagnostic{File: t.File, Line: t.Line, Msg: fmt.Sprintf("warning: this %s sentence takes about %.1f s to say (more than %.0f s): callers wait through it before they may answer; split it", t.Lang, d.Seconds(), max.Seconds())})
			}
		}
	}
	for _, f := range luaFiles(paths) {
		src, err := os.ReadFile(f)
		if err != nil {
			continue // Lint reports it
		}
		lines := strings.Split(string(src), "\n")
		for _, t := range textsOf(f, src, "ro") {
			if t.Line > 0 && t.Line <= len(lines) && strings.Contains(lines[t.Line-1], "lint: long") {
				continue // the designer knows (a list said after a miss)
			}
			if d := SpokenLength(t.Text); d > max {
				out = append(out, Diagnostic{File: f, Line: t.Line, Msg: fmt.Sprintf("warning: this %s sentence takes about %.1f s to say (more than %.0f s): callers wait through it before they may answer; split it, or list the options only after a miss", t.Lang, d.Seconds(), max.Seconds())})
			}
		}
	}
	return out
}

// luaFiles lists the paths that are files, and every *.lua under those
// that are folders (sorted).
func luaFiles(paths []string) []string {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			files = append(files, p)
			continue
		}
		var in []string
		_ = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".lua") {
				in = append(in, path)
			}
			return nil
		})
		sort.Strings(in)
		files = append(files, in...)
	}
	return files
}
