package flows

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Services are what a flow's API functions reach outside the script. Every
// field may be shared by all calls (each is safe for concurrent use). KB,
// Desk, Transcript and Calendar may be nil: a flow that uses a missing
// KB or Desk gets an error result (kb.search, ticket.*); without a
// Calendar the operators are taken as always available.
type Services struct {
	KB         Knowledge
	Desk       Desk
	Transcript Transcript
	Calendar   Calendar
	Log        *slog.Logger     // nil: slog.Default()
	Now        func() time.Time // nil: time.Now
	// HoursText says when the operators work, by language ("de luni până
	// vineri, între orele 8 și 20"): hours.describe() makes a sentence of
	// it. nil: the catalog's hours.default.
	HoursText map[string]string
	// Queues are the agent queues transfer() may name; a flow that names
	// another fails there (as a transfer to it would fail on the call).
	// nil: any name (a PBX whose queues the engine does not know).
	Queues []string
}

// Config says which flow answers which number, and the per-call limits.
type Config struct {
	// Routes maps a dialed number (Facts.Called) to a flow file, relative
	// to the flows folder ("main.lua", "passport.lua").
	Routes map[string]string
	// Default answers every number not in Routes; "main.lua" when empty.
	Default string
	Limits  Limits
	// OnlyRouted loads only the routed flows and the modules they require
	// (by literal name): a broken file elsewhere in the folder does not
	// stop them. The tools use it to try one flow; the engine loads and
	// checks every file.
	OnlyRouted bool
}

// Limits bound what one call's script may consume. Zero fields take the
// defaults (DefaultLimits). See docs/flows.md for what is and is not bounded.
type Limits struct {
	// Instructions is the number of Lua VM instructions a call may execute
	// (blocking API calls count as one). Default 5,000,000: a few seconds
	// of pure Lua; a normal call uses a few thousand.
	Instructions int64
	// CPU is the time a call may spend running Lua, excluding the time
	// blocked in API calls (prompts, listening, searches). Default 2 s.
	CPU time.Duration
	// Wall is the longest a call may last, all included. Default 1 h.
	Wall time.Duration
	// MaxString is the longest string a flow may build (.., string.rep,
	// string.format, gsub, table.concat). Default 64 KiB.
	MaxString int
	// Alloc is the total of string bytes a call may build. Default 16 MiB.
	Alloc int64
	// PatternSteps is the work a call's pattern matching (string.find,
	// match, gmatch, gsub) may do in all, in steps of the matcher (about
	// 10 ns each). Default 20,000,000.
	PatternSteps int64
	// Memory is the most bytes of Lua data (tables, strings, functions)
	// a call may hold, measured when the process heap grows. Default 8 MiB.
	Memory int64
	// CallStack is the deepest Lua call nesting. Default 200.
	CallStack int
	// Registry is the most Lua stack slots (locals and temporaries of all
	// active functions) a call may use. Default 65,536 (1 MiB).
	Registry int
}

// DefaultLimits are the limits used for zero fields of Config.Limits.
var DefaultLimits = Limits{
	Instructions: 5_000_000,
	CPU:          2 * time.Second,
	Wall:         time.Hour,
	MaxString:    64 << 10,
	Alloc:        16 << 20,
	Memory:       8 << 20,
	PatternSteps: 20_000_000,
	CallStack:    200,
	Registry:     1 << 16,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.Instructions > 0 {
		d.Instructions = l.Instructions
	}
	if l.CPU > 0 {
		d.CPU = l.CPU
	}
	if l.Wall > 0 {
		d.Wall = l.Wall
	}
	if l.MaxString > 0 {
		d.MaxString = l.MaxString
	}
	if l.Alloc > 0 {
		d.Alloc = l.Alloc
	}
	if l.PatternSteps > 0 {
		d.PatternSteps = l.PatternSteps
	}
	if l.Memory > 0 {
		d.Memory = l.Memory
	}
	if l.CallStack > 0 {
		d.CallStack = l.CallStack
	}
	if l.Registry > 0 {
		d.Registry = l.Registry
	}
	return d
}

// DefaultFlow is the flow that answers numbers without a route.
const DefaultFlow = "main.lua"

// Runtime holds the compiled flows of one folder and runs calls on them.
// Run, Reload and Watch are safe for concurrent use.
type Runtime struct {
	dir    string
	cfg    Config
	limits Limits
	cur    atomic.Pointer[version]
	mu     sync.Mutex // serializes Reload
}

// version is one consistent set of compiled flow files. A call keeps the
// version it started with.
type version struct {
	seq    int
	files  map[string]*compiled // by slash path relative to the folder
	stamps map[string]stamp     // of the flow files and the catalog's
	cat    *Catalog
}

type stamp struct {
	mod  time.Time
	size int64
}

// LoadError refuses a set of flow files; Diags say where.
type LoadError struct {
	Diags []Diagnostic
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString("flows: ")
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// Load compiles and lints every flow file (*.lua) under dir, except the
// folders tests, kb, prompts and catalog, loads the sentence catalog
// (dir/catalog/*.toml over the shipped one, LoadCatalog), and checks that
// every routed flow and the default exist and that every text("id") of the
// flows names a sentence of the catalog. It fails with a *LoadError naming
// file:line.
func Load(dir string, cfg Config) (*Runtime, error) {
	if cfg.Default == "" {
		cfg.Default = DefaultFlow
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	r := &Runtime{dir: abs, cfg: cfg, limits: cfg.Limits.withDefaults()}
	v, err := r.load(0)
	if err != nil {
		return nil, err
	}
	r.cur.Store(v)
	return r, nil
}

// Dir is the flows folder (absolute).
func (r *Runtime) Dir() string { return r.dir }

// Version is the number of the version serving new calls: 1 after Load,
// one more after each successful reload.
func (r *Runtime) Version() int { return r.cur.Load().seq }

// skipDirs are folders under the flows folder that hold no flow code.
var skipDirs = map[string]bool{"tests": true, "kb": true, "prompts": true, CatalogDir: true}

func (r *Runtime) scan() (map[string]stamp, error) {
	stamps := map[string]stamp{}
	err := filepath.WalkDir(r.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.dir, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == CatalogDir {
				return nil // its files are stamped: a changed sentence reloads
			}
			if path != r.dir && (skipDirs[d.Name()] || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".lua") && !isCatalogFile(rel) {
			return nil
		}
		if strings.HasPrefix(rel, CatalogDir+"/") && !isCatalogFile(rel) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		stamps[rel] = stamp{info.ModTime(), info.Size()}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	return stamps, nil
}

func (r *Runtime) load(seq int) (*version, error) {
	stamps, err := r.scan()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(stamps))
	for n := range stamps {
		if !isCatalogFile(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	v := &version{seq: seq + 1, files: map[string]*compiled{}, stamps: stamps}
	cat, diags := LoadCatalog(r.dir)
	v.cat = cat
	routed := []string{r.cfg.Default}
	for num, f := range r.cfg.Routes {
		if f == "" {
			diags = append(diags, Diagnostic{File: "routes", Line: 0, Msg: fmt.Sprintf("number %q has no flow file", num)})
			continue
		}
		routed = append(routed, f)
	}
	if r.cfg.OnlyRouted { // the routed files, then what they require
		names = names[:0]
		for _, f := range routed {
			if f = filepath.ToSlash(filepath.Clean(f)); !slices.Contains(names, f) {
				names = append(names, f)
			}
		}
	}
	for i := 0; i < len(names); i++ {
		n := names[i]
		if _, ok := stamps[n]; !ok {
			continue // a routed file that is missing: reported below
		}
		c, ds := compileFile(filepath.Join(r.dir, filepath.FromSlash(n)), n)
		diags = append(diags, ds...)
		if c == nil {
			continue
		}
		v.files[n] = c
		if r.cfg.OnlyRouted {
			for _, rq := range c.requires {
				if m := modulePath(rq.name); !slices.Contains(names, m) {
					names = append(names, m)
				}
			}
		}
	}
	for _, n := range names {
		if c := v.files[n]; c != nil {
			for _, rq := range c.requires {
				if _, ok := stamps[modulePath(rq.name)]; !ok {
					diags = append(diags, Diagnostic{File: n, Line: rq.line, Msg: fmt.Sprintf("require(%q): no %s in the flows folder", rq.name, modulePath(rq.name))})
				}
			}
		}
	}
	for _, n := range names {
		if c := v.files[n]; c != nil && cat != nil {
			diags = append(diags, unknownTexts(c, n, cat)...)
		}
	}
	for _, f := range routed {
		f = filepath.ToSlash(filepath.Clean(f))
		if _, ok := stamps[f]; !ok {
			diags = append(diags, Diagnostic{File: f, Msg: fmt.Sprintf("routed flow %s not found in %s", f, r.dir)})
		}
	}
	if len(diags) > 0 {
		return nil, &LoadError{Diags: diags}
	}
	return v, nil
}

// isCatalogFile reports whether a slash path relative to the flows folder
// is a file of the catalog (catalog/LANG.toml).
func isCatalogFile(rel string) bool {
	dir, file := path.Split(rel)
	return dir == CatalogDir+"/" && strings.HasSuffix(file, ".toml")
}

// Catalog is the sentence catalog of the version serving new calls.
func (r *Runtime) Catalog() *Catalog { return r.cur.Load().cat }

// Reload compiles the flows folder again and, when every file compiles and
// lints, serves the new version to new calls (calls in progress keep
// theirs). On error the previous version keeps serving, and the error
// names file:line.
func (r *Runtime) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.load(r.cur.Load().seq)
	if err != nil {
		return err
	}
	r.cur.Store(v)
	return nil
}

// WatchInterval is how often Watch looks at the flow files.
const WatchInterval = time.Second

// Watch reloads the flows when a file under the folder changes (polling the
// files' times and sizes every WatchInterval), logging each reload and each
// refused version. It returns when ctx ends; run it in a goroutine you join.
func (r *Runtime) Watch(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(WatchInterval)
	defer t.Stop()
	refused := map[string]stamp(nil) // the stamps of the last refused set
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamps, err := r.scan()
		if err != nil {
			log.Warn("flows: scan failed", "dir", r.dir, "err", err)
			continue
		}
		if sameStamps(stamps, r.cur.Load().stamps) || sameStamps(stamps, refused) {
			continue
		}
		if err := r.Reload(); err != nil {
			refused = stamps
			log.Error("flows: new version refused, the previous one keeps serving", "dir", r.dir, "err", err)
			continue
		}
		refused = nil
		log.Info("flows: reloaded", "dir", r.dir, "version", r.Version())
	}
}

func sameStamps(a, b map[string]stamp) bool {
	if a == nil || b == nil || len(a) != len(b) {
		return false
	}
	for k, s := range a {
		if b[k] != s {
			return false
		}
	}
	return true
}

// HasFlow reports whether the version serving new calls has the flow file
// name (relative to the flows folder, "survey.lua").
func (r *Runtime) HasFlow(name string) bool {
	_, ok := r.cur.Load().files[filepath.ToSlash(filepath.Clean(name))]
	return ok
}

// route picks the flow file for a dialed number.
func (r *Runtime) route(called string) string {
	if f, ok := r.cfg.Routes[called]; ok && f != "" {
		return filepath.ToSlash(filepath.Clean(f))
	}
	return filepath.ToSlash(filepath.Clean(r.cfg.Default))
}

// ScriptError is a flow that failed: a Lua error or a limit hit.
type ScriptError struct {
	File  string // flow file, relative to the flows folder; "" when unknown
	Line  int    // 0 when unknown
	Msg   string
	Limit bool // a limit was hit (instructions, CPU, string size, wall time)
}

func (e *ScriptError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

// ErrLimit is wrapped by errors of a limit hit.
var ErrLimit = errors.New("flow limit hit")

// Unwrap lets errors.Is(err, ErrLimit) find a limit hit.
func (e *ScriptError) Unwrap() error {
	if e.Limit {
		return ErrLimit
	}
	return nil
}

// Run runs the flow routed for f.Called on one call, until the flow ends
// (transfer, hang up, or the script returns: a hangup), the caller hangs up
// (ctx ends or the channel reports ErrHangup), or the script fails; then the
// runtime has already apologized, opened a ticket and decided the transfer
// or the hangup, and Outcome.Err says why. Run never panics on a script's
// behalf. The call keeps the version of the flows current when it started.
func (r *Runtime) Run(ctx context.Context, f Facts, ch Channel, svc Services) Outcome {
	return r.run(ctx, r.cur.Load(), f, ch, svc)
}

func (r *Runtime) run(ctx context.Context, v *version, f Facts, ch Channel, svc Services) (out Outcome) {
	if svc.Log == nil {
		svc.Log = slog.Default()
	}
	if svc.Now == nil {
		svc.Now = time.Now
	}
	if f.Lang == "" {
		f.Lang = "ro"
	}
	if f.Start.IsZero() {
		f.Start = svc.Now()
	}
	flow := r.route(f.Called)
	if f.Flow != "" {
		flow = filepath.ToSlash(filepath.Clean(f.Flow))
	}
	c := newCall(ctx, r, v, flow, f, ch, svc)
	defer c.close()
	defer func() {
		// PCall turns a panic inside the script's API calls into a Lua
		// error; this catches one outside it, so no caller is left in silence.
		if p := recover(); p != nil {
			out = c.fail(&ScriptError{File: flow, Msg: fmt.Sprintf("internal error: %v", p)})
		}
	}()
	return c.run()
}
