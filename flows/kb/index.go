package kb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/govline/ivr/internal/editdist"
	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/store"
)

// Score thresholds. A Result's Score is a confidence in 0..1 (see Search).
const (
	// ConfidentScore is the score from which the shipped flows answer
	// without asking back; Result.Confident is Score >= ConfidentScore.
	ConfidentScore = 0.6
	// HandoffScore is the score below which a result is not worth
	// offering: a flow whose best result scores less hands the call off
	// (or asks the caller to say it differently once). Between the two,
	// a flow asks back ("did you mean X or Y?") with the first results.
	HandoffScore = 0.3
)

// BM25 column weights: a word in the title counts most, then the keywords
// editors chose, then the answer text.
const (
	weightTitle    = 4.0
	weightKeywords = 3.0
	weightBody     = 1.0
)

// unknownFloor: see analyze.
const unknownFloor = 0.6

// maxMatchDF: see analyze. It only matters for bases of more than twice
// as many articles (the shipped base has under a hundred): there, words in
// more articles are searched for only when the query has no rarer word,
// and then first in titles and keywords.
const maxMatchDF = 500

// MaxLimit caps the number of results of one search.
const MaxLimit = 100

// candidates is how many articles BM25 returns for scoring.
const candidates = 12

// Result is one article found by Search.
type Result struct {
	ID        string  `json:"id"`
	Title     string  `json:"title"`
	Service   string  `json:"service"`
	Lang      string  `json:"lang"`
	Spoken    string  `json:"spoken"`
	Score     float64 `json:"score"`
	Confident bool    `json:"confident"`
}

// Miss is a query the base did not answer confidently, as stored (personal
// data masked), with how often it was asked.
type Miss struct {
	Lang  string    `json:"lang"`
	Query string    `json:"query"`
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Index is the knowledge base index: a SQLite file of the engine's own
// (IndexPath), rebuilt from the articles that ship with the flows. It is
// safe for concurrent use. Several processes may share the file: a search
// reads the base as committed at that moment, so an import by `ivrctl kb
// import` is seen by the engine's next search without a restart. The
// queries it does not answer confidently go to a MissLog, the line's
// shared store.
type Index struct {
	db     *store.DB
	misses MissLog

	mu    sync.Mutex // guards cache
	cache *lexicon
}

// lexicon is what a search needs besides the FTS table, read once per
// import generation.
type lexicon struct {
	gen  string
	syn  *Synonyms
	docs map[string]int // articles per language
}

// IndexFile is the name of the index file inside the engine's data
// directory.
const IndexFile = "kb.db"

// IndexPath returns the path of the index inside dataDir.
func IndexPath(dataDir string) string { return filepath.Join(dataDir, IndexFile) }

//go:embed migrations/sqlite/*.sql
var indexFiles embed.FS

// indexSchema is the index file's tables (SQLite only: FTS5).
var indexSchema = store.Schema{Name: "knowledge base index", SQLite: func() fs.FS {
	sub, err := fs.Sub(indexFiles, "migrations/sqlite")
	if err != nil {
		panic(err) // a constant path
	}
	return sub
}()}

// Open opens (creating it and its folder if needed) the index at path and
// applies its migrations; an empty index answers every search with no
// results. misses keeps the misses RecordMiss records (nil: they are not
// kept, and Misses fails). Close closes the file.
func Open(path string, misses MissLog) (*Index, error) {
	if path == "" {
		return nil, errors.New("kb: open: empty index path")
	}
	db, err := store.Open(context.Background(), store.SQLiteURL(path), store.Options{Schema: &indexSchema})
	if err != nil {
		return nil, fmt.Errorf("kb: %w", err)
	}
	return &Index{db: db, misses: misses}, nil
}

// Close closes the index file.
func (ix *Index) Close() error { return ix.db.Close() }

// ImportOption changes how Import indexes.
type ImportOption func(*importConfig)

type importConfig struct{ syn *Synonyms }

// WithSynonyms indexes with syn instead of DefaultSynonyms() (nil: the
// default).
func WithSynonyms(syn *Synonyms) ImportOption {
	return func(c *importConfig) { c.syn = syn }
}

// Import replaces the whole base with arts, in one transaction: a search
// running meanwhile sees the old base or the new one, never a mix. arts
// should come from LoadDir (which validates them); Import checks only what
// would corrupt the index (language, empty id, duplicates).
func (ix *Index) Import(ctx context.Context, arts []Article, opts ...ImportOption) error {
	var cfg importConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.syn == nil {
		cfg.syn = DefaultSynonyms()
	}
	seen := map[string]bool{}
	for _, a := range arts {
		if !validLang(a.Lang) || a.ID == "" {
			return fmt.Errorf("kb: import: %s: article %q has lang %q: want an id and lang ro or en", a.File, a.ID, a.Lang)
		}
		if seen[a.Lang+"/"+a.ID] {
			return fmt.Errorf("kb: import: %s: duplicate id %q in %s", a.File, a.ID, a.Lang)
		}
		seen[a.Lang+"/"+a.ID] = true
	}

	type row struct {
		a                     *Article
		title, keywords, body string
	}
	rows := make([]row, len(arts))
	df := map[string]map[string]int{"ro": {}, "en": {}}
	docs := map[string]int{}
	for i := range arts {
		a := &arts[i]
		t := indexTerms(cfg.syn, a.Lang, a.Title)
		k := indexTerms(cfg.syn, a.Lang, strings.Join(a.Keywords, " , "))
		b := indexTerms(cfg.syn, a.Lang, a.Spoken+"\n"+a.Full)
		rows[i] = row{a, ftsText(a.Lang, t), ftsText(a.Lang, k), ftsText(a.Lang, b)}
		docs[a.Lang]++
		uniq := map[string]bool{}
		for _, ts := range [][]string{t, k, b} {
			for _, x := range ts {
				uniq[x] = true
			}
		}
		for x := range uniq {
			df[a.Lang][x]++
		}
	}

	err := ix.db.Write(ctx, func(tx *store.Tx) error {
		for _, q := range []string{
			`DELETE FROM kb_articles`, `DELETE FROM kb_fts`, `DELETE FROM kb_terms`,
			`DELETE FROM kb_terms_del`, `DELETE FROM kb_synonyms`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("clear: %w", err)
			}
		}
		insA, err := tx.PrepareContext(ctx, `INSERT INTO kb_articles
			(seq, id, lang, title, service, keywords, phrases, spoken, full, links, reviewed_ns, file)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insA.Close()
		insF, err := tx.PrepareContext(ctx, `INSERT INTO kb_fts (rowid, title, keywords, body) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insF.Close()
		for i, r := range rows {
			a := r.a
			seq := i + 1
			var rev int64
			if !a.Reviewed.IsZero() {
				rev = a.Reviewed.UnixNano()
			}
			if _, err := insA.ExecContext(ctx, seq, a.ID, a.Lang, a.Title, a.Service,
				strings.Join(a.Keywords, ", "), keywordPhrases(cfg.syn, a.Lang, a.Keywords), a.Spoken, a.Full, strings.Join(a.Links, "\n"), rev, a.File); err != nil {
				return fmt.Errorf("%s: %w", a.File, err)
			}
			if _, err := insF.ExecContext(ctx, seq, r.title, r.keywords, r.body); err != nil {
				return fmt.Errorf("%s: %w", a.File, err)
			}
		}
		// In key order: B-tree inserts at the end of the tree are cheapest.
		type termRow struct {
			lang, term string
			df         int
		}
		type delRow struct{ lang, variant, term string }
		var trs []termRow
		var drs []delRow
		for lang, m := range df {
			for term, n := range m {
				trs = append(trs, termRow{lang, term, n})
				if !strings.HasPrefix(term, conceptPrefix) && len(term) >= minCorrect {
					for _, v := range deletions(term) {
						drs = append(drs, delRow{lang, v, term})
					}
				}
			}
		}
		sort.Slice(trs, func(i, j int) bool {
			return trs[i].lang < trs[j].lang || trs[i].lang == trs[j].lang && trs[i].term < trs[j].term
		})
		sort.Slice(drs, func(i, j int) bool {
			a, b := drs[i], drs[j]
			if a.lang != b.lang {
				return a.lang < b.lang
			}
			if a.variant != b.variant {
				return a.variant < b.variant
			}
			return a.term < b.term
		})
		terms := newBatch(tx, `INSERT INTO kb_terms (lang, term, df) VALUES `, 3)
		dels := newBatch(tx, `INSERT OR IGNORE INTO kb_terms_del (lang, variant, term) VALUES `, 3)
		for _, r := range trs {
			if err := terms.add(ctx, r.lang, r.term, r.df); err != nil {
				return err
			}
		}
		for _, r := range drs {
			if err := dels.add(ctx, r.lang, r.variant, r.term); err != nil {
				return err
			}
		}
		if err := terms.flush(ctx); err != nil {
			return err
		}
		if err := dels.flush(ctx); err != nil {
			return err
		}
		for lang, gs := range cfg.syn.groups {
			for gi, g := range gs {
				for _, p := range g.phrases {
					if _, err := tx.ExecContext(ctx, `INSERT INTO kb_synonyms (lang, grp, phrase) VALUES (?, ?, ?)`,
						lang, gi, strings.Join(p, " ")); err != nil {
						return err
					}
				}
			}
		}
		gen := strconv.FormatInt(time.Now().UnixNano(), 10)
		for k, v := range map[string]string{
			"generation":  gen,
			"imported_ns": gen,
			"articles_ro": strconv.Itoa(docs["ro"]),
			"articles_en": strconv.Itoa(docs["en"]),
		} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO kb_meta (key, value) VALUES (?, ?)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kb: import: %w", err)
	}
	return nil
}

// batch inserts rows many at a time (one statement per batchRows rows):
// an import writes hundreds of thousands of vocabulary rows.
type batch struct {
	tx     *store.Tx
	prefix string
	cols   int
	args   []any
}

const batchRows = 200

func newBatch(tx *store.Tx, prefix string, cols int) *batch {
	return &batch{tx: tx, prefix: prefix, cols: cols}
}

func (b *batch) add(ctx context.Context, vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) >= batchRows*b.cols {
		return b.flush(ctx)
	}
	return nil
}

func (b *batch) flush(ctx context.Context) error {
	if len(b.args) == 0 {
		return nil
	}
	row := "(?" + strings.Repeat(",?", b.cols-1) + ")"
	q := b.prefix + row + strings.Repeat(","+row, len(b.args)/b.cols-1)
	_, err := b.tx.ExecContext(ctx, q, b.args...)
	b.args = b.args[:0]
	return err
}

// ImportDir loads dir (LoadDir) and dir/synonyms.txt (when present) and
// imports them: what `ivrctl kb import` and the engine at start do.
func (ix *Index) ImportDir(ctx context.Context, dir string) (int, error) {
	arts, err := LoadDir(dir)
	if err != nil {
		return 0, err
	}
	syn, err := loadDirSynonyms(dir)
	if err != nil {
		return 0, err
	}
	return len(arts), ix.Import(ctx, arts, WithSynonyms(syn))
}

func loadDirSynonyms(dir string) (*Synonyms, error) {
	path := filepath.Join(dir, "synonyms.txt")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return DefaultSynonyms(), nil
	}
	return LoadSynonyms(path)
}

// indexTerms is the text of one indexed column: its terms plus the concept
// of every synonym phrase in it.
func indexTerms(syn *Synonyms, lang, s string) []string {
	return syn.expand(lang, terms(lang, s))
}

// loadLexicon returns the synonyms and article counts of the current
// import, reading them again only when another import happened.
func (ix *Index) loadLexicon(ctx context.Context) (*lexicon, error) {
	var gen string
	err := ix.db.QueryRowContext(ctx, `SELECT value FROM kb_meta WHERE key = 'generation'`).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // never imported
	}
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	c := ix.cache
	ix.mu.Unlock()
	if c != nil && c.gen == gen {
		return c, nil
	}
	c = &lexicon{gen: gen, syn: &Synonyms{groups: map[string][]synGroup{}}, docs: map[string]int{}}
	rows, err := ix.db.QueryContext(ctx, `SELECT lang, grp, phrase FROM kb_synonyms ORDER BY lang, grp, rowid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var lang, phrase string
		var grp int
		if err := rows.Scan(&lang, &grp, &phrase); err != nil {
			return nil, err
		}
		gs := c.syn.groups[lang]
		if len(gs) <= grp {
			gs = append(gs, make([]synGroup, grp+1-len(gs))...)
		}
		p := strings.Fields(phrase)
		if len(gs[grp].phrases) == 0 {
			gs[grp].concept = conceptPrefix + strings.Join(p, "")
		}
		gs[grp].phrases = append(gs[grp].phrases, p)
		c.syn.groups[lang] = gs
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, lang := range Languages {
		var v string
		if err := ix.db.QueryRowContext(ctx, `SELECT value FROM kb_meta WHERE key = ?`, "articles_"+lang).Scan(&v); err == nil {
			c.docs[lang], _ = strconv.Atoi(v)
		}
	}
	c.syn.finish()
	ix.mu.Lock()
	ix.cache = c
	ix.mu.Unlock()
	return c, nil
}

// Search finds the articles of language lang ("ro" or "en") that answer
// query, best first, at most limit (limit <= 0 means 5; at most MaxLimit).
//
// The query is folded (case, diacritics in both spellings), stripped of
// stop words and filler, stemmed, and its synonym phrases replaced by
// their group; words the base does not know are corrected to the nearest
// known word (deletion neighbourhood, edit distance 1, or 2 for long words),
// and two words the recognizer split are joined when the joined word is
// known. Articles are ranked by BM25 over title, keywords and text.
//
// Score is a confidence in 0..1 built from two facts a caller would
// recognise: how much of what they said the article covers (the share of
// the query's words, weighted by rarity, found in the article; an unknown
// word counts as not covered) and how clearly the first article beats the
// second (BM25 margin). See docs/knowledge-base.md. Only the first result
// can be Confident (Score >= ConfidentScore).
//
// Search does not record misses: the caller does (RecordMiss) when the
// first result is not confident, so that tools such as `ivrctl kb search`
// can search without polluting the list.
func (ix *Index) Search(ctx context.Context, lang, query string, limit int, opts ...SearchOption) ([]Result, error) {
	var o searchConfig
	for _, opt := range opts {
		opt(&o)
	}
	if !validLang(lang) {
		return nil, fmt.Errorf("kb: search: language %q: want ro or en", lang)
	}
	if limit <= 0 {
		limit = 5
	}
	limit = min(limit, MaxLimit)
	lex, err := ix.loadLexicon(ctx)
	if err != nil {
		return nil, fmt.Errorf("kb: search: %w", err)
	}
	if lex == nil {
		return nil, nil
	}
	q, err := ix.analyze(ctx, lex, lang, query)
	if err != nil {
		return nil, fmt.Errorf("kb: search: %w", err)
	}
	if len(q.match) == 0 {
		return nil, nil
	}
	q.service = o.service
	res, err := ix.rank(ctx, lex, lang, q, limit)
	if err != nil {
		return nil, fmt.Errorf("kb: search: %w", err)
	}
	return res, nil
}

// SearchOption narrows a search.
type SearchOption func(*searchConfig)

type searchConfig struct{ service string }

// InService searches only the articles of service (one of Services): the
// scores are computed among them, as if the base held only those.
func InService(service string) SearchOption {
	return func(c *searchConfig) { c.service = service }
}

// ErrNotFound is returned (wrapped) by Get for an id the base does not hold.
var ErrNotFound = errors.New("kb: no such article")

// Get returns the article id in lang as a Result with Score 1 (a flow that
// names the article it wants is sure of it).
func (ix *Index) Get(ctx context.Context, lang, id string) (Result, error) {
	r := Result{ID: id, Lang: lang, Score: 1, Confident: true}
	err := ix.db.QueryRowContext(ctx, `SELECT title, service, spoken FROM kb_articles WHERE lang = ? AND id = ?`, lang, id).
		Scan(&r.Title, &r.Service, &r.Spoken)
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, fmt.Errorf("%w: %q in %s", ErrNotFound, id, lang)
	}
	if err != nil {
		return Result{}, fmt.Errorf("kb: get %q: %w", id, err)
	}
	return r, nil
}

// analyzed is a query ready to run.
type analyzed struct {
	words []qword         // the caller's content words, for coverage
	match []string        // distinct known terms to search for
	set   map[string]bool // the known terms
	head  bool            // match in titles and keywords first (see analyze)
	// service, when set, restricts the search to that service's articles.
	service string
}

type qword struct {
	term   string  // the known term it maps to; "" if unknown
	weight float64 // IDF of the term; an unknown word weighs as a rare one
}

func (ix *Index) analyze(ctx context.Context, lex *lexicon, lang, query string) (analyzed, error) {
	ws := contentWords(lang, query)
	if len(ws) > 32 {
		ws = ws[:32] // a recognizer's run-on; the start says what they want
	}
	ts := make([]string, len(ws))
	for i, w := range ws {
		ts[i] = stem(lang, w)
	}
	ts = lex.syn.replace(lang, ts)
	// Split words: "pasa portul" -> "pasaportul" when that is known (only
	// where no synonym phrase changed the word count).
	joins := map[int]string{}
	if len(ts) == len(ws) {
		for i := 0; i+1 < len(ws); i++ {
			if j := stem(lang, ws[i]+ws[i+1]); len(j) >= 5 {
				joins[i] = j
			}
		}
	}
	look := map[string]bool{}
	for _, t := range ts {
		look[t] = true
	}
	for _, j := range joins {
		look[j] = true
	}
	df, err := ix.docFreq(ctx, lang, look)
	if err != nil {
		return analyzed{}, err
	}
	docs := float64(lex.docs[lang])
	idf := func(d int) float64 { return math.Log(1 + (docs-float64(d)+0.5)/(float64(d)+0.5)) }
	a := analyzed{set: map[string]bool{}}
	var common []string
	ftsRows := 0 // FTS5's N: the rows of all languages
	for _, n := range lex.docs {
		ftsRows += n
	}
	commonDF := min(ftsRows/2, maxMatchDF)
	searched := map[string]bool{}
	add := func(term string) {
		a.set[term] = true
		if !searched[term] {
			searched[term] = true
			a.match = append(a.match, term)
		}
	}
	for i := 0; i < len(ts); i++ {
		t := ts[i]
		if j, ok := joins[i]; ok && df[j] > 0 {
			t = j // a word the recognizer split in two
			i++
		}
		if d, ok := df[t]; ok {
			a.words = append(a.words, qword{t, idf(d)})
			if d <= commonDF {

				add(t)
			} else {
				a.set[t] = true
				common = append(common, t)
			}
			continue
		}
		c, d, err := ix.correct(ctx, lang, t)
		if err != nil {
			return analyzed{}, err
		}
		if c == "" {
			a.words = append(a.words, qword{"", -1}) // weighed below
			continue
		}
		a.words = append(a.words, qword{c, idf(d)})
		add(c)
	}
	// Words in more than half of the articles add nothing to BM25 (FTS5
	// floors their IDF to ~0) but make it score most of the base; in a
	// large base, so do words in more than maxMatchDF articles (BM25 costs
	// about 2 us per matching article). They are searched for only when
	// the query has nothing rarer; coverage still counts them.
	if len(a.match) == 0 {
		for _, t := range common {
			add(t)
		}
		// Only words that many articles hold: look first for the articles
		// that have them in their title or keywords.
		a.head = ftsRows > 2*maxMatchDF
	}
	// A word the base does not know at all (after correction) weighs as
	// much as the average known word of the query, and at least
	// unknownFloor of the rarest possible word: filler the stop list lacks
	// costs some coverage, an out-of-domain subject ("rovinietă",
	// "pensie") costs a lot because it usually comes with few known words.
	var sum float64
	var n int
	for _, w := range a.words {
		if w.term != "" {
			sum += w.weight
			n++
		}
	}
	for i := range a.words {
		if a.words[i].term == "" && n > 0 {
			a.words[i].weight = max(sum/float64(n), unknownFloor*idf(0))
		}
	}
	return a, nil
}

func (ix *Index) docFreq(ctx context.Context, lang string, terms map[string]bool) (map[string]int, error) {
	out := map[string]int{}
	if len(terms) == 0 {
		return out, nil
	}
	args := []any{lang}
	ph := make([]string, 0, len(terms))
	for t := range terms {
		args = append(args, t)
		ph = append(ph, "?")
	}
	rows, err := ix.db.QueryContext(ctx, `SELECT term, df FROM kb_terms WHERE lang = ? AND term IN (`+strings.Join(ph, ",")+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var d int
		if err := rows.Scan(&t, &d); err != nil {
			return nil, err
		}
		out[t] = d
	}
	return out, rows.Err()
}

// minCorrect is the length from which words are spelling-corrected.
const minCorrect = 4

// deletions returns w and every form of w with one letter deleted.
func deletions(w string) []string {
	out := []string{w}
	for i := range len(w) {
		v := w[:i] + w[i+1:]
		if len(out) > 0 && out[len(out)-1] == v {
			continue // doubled letter
		}
		out = append(out, v)
	}
	return out
}

// correct returns the known term nearest to an unknown one (edit distance
// 1, or 2 for words of 8 letters or more; ties go to the more frequent
// term), or "".
func (ix *Index) correct(ctx context.Context, lang, t string) (string, int, error) {
	if len(t) < minCorrect || strings.HasPrefix(t, conceptPrefix) {
		return "", 0, nil
	}
	maxDist := 1
	if len(t) >= 8 {
		maxDist = 2
	}
	vs := deletions(t)
	args := []any{lang}
	for _, v := range vs {
		args = append(args, v)
	}
	rows, err := ix.db.QueryContext(ctx, `SELECT DISTINCT d.term, k.df FROM kb_terms_del AS d
		JOIN kb_terms AS k ON k.lang = d.lang AND k.term = d.term
		WHERE d.lang = ? AND d.variant IN (?`+strings.Repeat(",?", len(vs)-1)+`)`, args...)
	if err != nil {
		return "", 0, err
	}
	defer rows.Close()
	best, bestD, bestDist := "", 0, maxDist+1
	for rows.Next() {
		var c string
		var d int
		if err := rows.Scan(&c, &d); err != nil {
			return "", 0, err
		}
		dist := editdist.Strings(c, t)
		if dist < bestDist || (dist == bestDist && d > bestD) {
			best, bestD, bestDist = c, d, dist
		}
	}
	if err := rows.Err(); err != nil {
		return "", 0, err
	}
	if bestDist > maxDist {
		return "", 0, nil
	}
	return best, bestD, nil
}

// rank runs the BM25 query and turns its scores into confidences.
func (ix *Index) rank(ctx context.Context, lex *lexicon, lang string, q analyzed, limit int) ([]Result, error) {
	quoted := make([]string, len(q.match))
	for i, t := range q.match {
		quoted[i] = `"` + lang + "_" + t + `"`
	}
	expr := strings.Join(quoted, " OR ")
	cols := "{title keywords body}"
	if q.head {
		cols = "{title keywords}"
	}
	for {
		cs, err := ix.candidates(ctx, lang, cols+" : ("+expr+")", max(candidates, limit), q)
		if err != nil {
			return nil, err
		}
		if cols == "{title keywords}" && len(cs) < candidates {
			cols = "{title keywords body}"
			continue
		}
		return score(cs, limit), nil
	}
}

// ftsText is a column of kb_fts: the terms, each prefixed with its
// language ("ro_buletin").
func ftsText(lang string, ts []string) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(lang)
		b.WriteByte('_')
		b.WriteString(t)
	}
	return b.String()
}

// cand is an article found by BM25, with what scoring needs.
type cand struct {
	r       Result
	bm25    float64
	cov     float64
	phrases int
}

// candidates runs the BM25 query for expr (an FTS5 expression over the
// text columns) and measures each article's coverage of q.
func (ix *Index) candidates(ctx context.Context, lang, expr string, n int, q analyzed) ([]cand, error) {
	// BM25 in a subquery: the sort carries only rowid and score, and the
	// article and its indexed text are read for the few rows kept.
	rows, err := ix.db.QueryContext(ctx, `SELECT a.id, a.title, a.service, a.spoken, a.phrases, f.title, f.keywords, f.body, m.s
		FROM (SELECT rowid, -bm25(kb_fts, ?, ?, ?) AS s FROM kb_fts WHERE kb_fts MATCH ?
			AND (? = '' OR rowid IN (SELECT seq FROM kb_articles WHERE service = ?)) ORDER BY s DESC LIMIT ?) AS m
		JOIN kb_articles AS a ON a.seq = m.rowid
		JOIN kb_fts AS f ON f.rowid = m.rowid
		ORDER BY m.s DESC`,
		weightTitle, weightKeywords, weightBody, expr, q.service, q.service, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cs []cand
	var total float64
	for _, w := range q.words {
		total += w.weight
	}
	for rows.Next() {
		var c cand
		var kws, ft, fk, fb string
		if err := rows.Scan(&c.r.ID, &c.r.Title, &c.r.Service, &c.r.Spoken, &kws, &ft, &fk, &fb, &c.bm25); err != nil {
			return nil, err
		}
		c.phrases = phraseHits(kws, q.set)
		c.r.Lang = lang
		has := map[string]bool{}
		for _, s := range []string{ft, fk, fb} {
			for _, t := range strings.Fields(s) {
				has[strings.TrimPrefix(t, lang+"_")] = true
			}
		}
		var got float64
		for _, w := range q.words {
			if w.term != "" && has[w.term] {
				got += w.weight
			}
		}
		if total > 0 {
			c.cov = got / total
		}
		cs = append(cs, c)
	}
	return cs, rows.Err()
}

// score orders the candidates and turns BM25 into confidences.
func score(cs []cand, limit int) []Result {
	if len(cs) == 0 {
		return nil
	}
	// Order by BM25 damped by coverage: an article that matches a frequent
	// word many times must not beat one that covers what was asked.
	// A keyword phrase of several words said whole by the caller is strong
	// evidence ("buletin nou", "pick up").
	for i := range cs {
		cs[i].bm25 *= (0.5 + 0.5*cs[i].cov) * (1 + phraseBonus*float64(min(cs[i].phrases, 2)))
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].bm25 > cs[j].bm25 })
	top := cs[0].bm25
	margin := 1.0
	if len(cs) > 1 && top > 0 {
		margin = (top - cs[1].bm25) / top
	}
	out := make([]Result, 0, min(limit, len(cs)))
	for i, c := range cs {
		if i == limit {
			break
		}
		rel := 0.0
		if top > 0 {
			rel = c.bm25 / top
		}
		sep := runnerUp
		if i == 0 {
			sep = runnerUp + (1-runnerUp)*math.Min(1, margin/clearMargin)
		}
		c.r.Score = round3(c.cov * rel * sep)
		c.r.Confident = c.r.Score >= ConfidentScore
		out = append(out, c.r)
	}
	return out
}

// Separation: the first result gets its full coverage as score when it
// leads the second by clearMargin (a share of its BM25) or more; with a tie
// it gets runnerUp of it, like every other result. So a tie between two
// articles that both cover the query lands between HandoffScore and
// ConfidentScore: the flow asks the caller to choose.
const (
	clearMargin = 0.25
	runnerUp    = 0.55
)

// phraseBonus multiplies the BM25 score of an article for each (up to two)
// of its multi-word keywords that the query contains whole.
const phraseBonus = 0.3

// phraseHits counts the phrases (as stored in kb_articles.phrases: terms
// joined by spaces, phrases by '|') whose terms are all in the query.
func phraseHits(phrases string, query map[string]bool) int {
	n := 0
	for p := range strings.SplitSeq(phrases, "|") {
		all := p != ""
		for t := range strings.FieldsSeq(p) {
			if !query[t] {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}

// keywordPhrases returns the keywords of two words or more as terms with
// synonym phrases replaced, in the form phraseHits reads.
func keywordPhrases(syn *Synonyms, lang string, kws []string) string {
	var ps []string
	for _, kw := range kws {
		ts := terms(lang, kw)
		if len(ts) < 2 {
			continue
		}
		ps = append(ps, strings.Join(syn.replace(lang, ts), " "))
	}
	return strings.Join(ps, "|")
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// maxMissBytes bounds a stored miss (a recognizer's run-on).
const maxMissBytes = 500

// RecordMiss stores a query the base did not answer confidently: the flows
// runtime calls it after Search when the first result is not Confident (or
// there is none). Personal data is masked first (redact.Text, white space
// collapsed); the same masked query in the same language is counted, not
// stored twice. Without a MissLog it does nothing.
func (ix *Index) RecordMiss(ctx context.Context, lang, query string) error {
	if !validLang(lang) {
		return fmt.Errorf("kb: record miss: language %q: want ro or en", lang)
	}
	q := strings.ToLower(strings.Join(strings.Fields(redact.Text(query)), " "))
	if q == "" || ix.misses == nil {
		return nil
	}
	if len(q) > maxMissBytes {
		cut := maxMissBytes
		for cut > 0 && !utf8.RuneStart(q[cut]) {
			cut--
		}
		q = q[:cut]
	}
	return ix.misses.RecordMiss(ctx, lang, q, time.Now())
}

// Misses returns the misses last asked at or after since, most asked
// first (then most recent), from the index's MissLog.
func (ix *Index) Misses(ctx context.Context, since time.Time) ([]Miss, error) {
	if ix.misses == nil {
		return nil, errors.New("kb: misses: the index keeps no misses (no miss log)")
	}
	return ix.misses.Misses(ctx, since)
}
