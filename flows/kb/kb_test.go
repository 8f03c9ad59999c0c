package kb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/govline/ivr/store"
)

// openIndex returns an index in a fresh file, its misses kept in a fresh
// SQLite line's database.
func openIndex(t testing.TB) (*Index, *store.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), store.SQLiteURL(filepath.Join(dir, "ivr.db")), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ix, err := Open(IndexPath(dir), NewMissTable(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix, db
}

// shipped imports the real base (this directory).
func shipped(t testing.TB) *Index {
	t.Helper()
	ix, _ := openIndex(t)
	if _, err := ix.ImportDir(context.Background(), "."); err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestShippedBaseIsValid(t *testing.T) {
	arts, err := LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, a := range arts {
		per[a.Lang]++
	}
	if per["ro"] < 40 || per["en"] < 40 {
		t.Errorf("articles per language: %v, want at least 40 each", per)
	}
	// The shipped flows reference these ids.
	for _, id := range []string{"cei-obtain", "cei-documents", "cei-appointment", "cei-validity",
		"cei-lost-stolen", "cei-change-address", "portal-create-account", "portal-password-reset",
		"portal-account-validation", "online-request-submit", "request-status-check", "passport-obtain",
		"driving-licence-exchange", "support-hours", "support-levels", "support-tickets"} {
		for _, lang := range Languages {
			if !slices.ContainsFunc(arts, func(a Article) bool { return a.ID == id && a.Lang == lang }) {
				t.Errorf("%s/%s.md missing", lang, id)
			}
		}
	}
	if _, err := LoadSynonyms("synonyms.txt"); err != nil {
		t.Error(err)
	}
}

// A phrase in two groups of a language is refused: a caller who says it
// would find only one group's articles.
func TestSynonymPhraseInTwoGroups(t *testing.T) {
	_, err := ParseSynonyms("s.txt", []byte("ro: programare = rezervare\nro: program de lucru = program = rezervare\nen: licence = permit\n"))
	if err == nil || !strings.Contains(err.Error(), `s.txt:2: phrase "rezervare" is also in the group of line 1`) {
		t.Errorf("error %v", err)
	}
}

// Articles that answer the same evaluation questions within RivalMargin
// are found; Get reads one article; a search in a service finds only its
// articles, scored among them.
func TestRivalsGetAndServices(t *testing.T) {
	ix := shipped(t)
	ctx := context.Background()
	rs, err := Rivals(ctx, ix, []EvalQuery{{Expected: "portal-create-account", Lang: "ro", Query: "cum îmi fac cont pe portal", Line: 7}}, RivalMargin)
	if err != nil || len(rs) != 1 || rs[0].A != "portal-create-account" || rs[0].B != "portal-delete-account" {
		t.Errorf("rivals %+v, %v", rs, err)
	}
	a, err := ix.Get(ctx, "en", "passport-lost")
	if err != nil || a.Service != "passport" || a.Spoken == "" || !a.Confident {
		t.Errorf("Get: %+v, %v", a, err)
	}
	if _, err := ix.Get(ctx, "en", "no-such"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown id: %v", err)
	}
	all := search(t, ix, "ro", "am pierdut")
	in, err := ix.Search(ctx, "ro", "am pierdut", 5, InService("driving_licence"))
	if err != nil || len(in) == 0 || in[0].ID != "driving-licence-lost" {
		t.Fatalf("search in a service: %+v, %v (without: %s)", in, err, top(all))
	}
	for _, r := range in {
		if r.Service != "driving_licence" {
			t.Errorf("search in driving_licence found %s (%s)", r.ID, r.Service)
		}
	}
}

func TestDefaultSynonyms(t *testing.T) {
	if DefaultSynonyms() == nil {
		t.Fatal("nil")
	}
}

const goodArticle = `---
id: sample
lang: ro
title: Un articol
service: passport
keywords: unu, doi
reviewed: 2026-01-02
---

## Spoken

Prima propoziție. A doua.

## Full

Tot textul.
`

func writeBase(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseArticle(t *testing.T) {
	a, err := ParseArticle("ro/sample.md", "ro", []byte(goodArticle))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "sample" || a.Service != "passport" || a.Spoken != "Prima propoziție. A doua." ||
		a.Full != "Tot textul." || !slices.Equal(a.Keywords, []string{"unu", "doi"}) ||
		!a.Reviewed.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parsed %+v", a)
	}
}

// Each broken article is reported with the file and the line of the problem.
func TestParseArticleErrors(t *testing.T) {
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown service", "service: passport", "service: pensions", `ro/sample.md:5: unknown service "pensions"`},
		{"missing spoken", "## Spoken\n\nPrima propoziție. A doua.\n", "", "missing spoken answer"},
		{"empty spoken", "Prima propoziție. A doua.", "", "ro/sample.md:10: empty spoken answer"},
		{"too long spoken", "A doua.", "A doua. A treia. A patra.", "ro/sample.md:10: spoken answer has 4 sentences"},
		{"bad date", "2026-01-02", "02.01.2026", `ro/sample.md:7: reviewed "02.01.2026"`},
		{"unknown key", "keywords: unu, doi", "keywords: unu\ncolor: red", `ro/sample.md:7: unknown key "color"`},
		{"id not file", "id: sample", "id: other", `ro/sample.md:2: id "other" differs from the file name`},
		{"wrong lang", "lang: ro", "lang: en", `ro/sample.md:3: lang "en", but the file is in the ro/ folder`},
		{"no front matter", "---\nid", "id", "ro/sample.md:1: want front matter"},
		{"bad link", "reviewed:", "links: ftp://x\nreviewed:", `ro/sample.md:7: link "ftp://x"`},
		{"extra section", "## Full", "## Notes\n\nx\n\n## Full", `unknown section "Notes"`},
		{"a URL in the spoken answer", "A doua.", "Intrați pe https://portal.example.gov.ro/cei.", `ro/sample.md:10: spoken answer has the address "https://portal.example.gov.ro/cei."`},
		{"a site in the spoken answer", "A doua.", "Intrați pe ghiseul.ro pentru plată.", `spoken answer has the address "ghiseul.ro"`},
		{"an e-mail in the spoken answer", "A doua.", "Scrieți la info@example.gov.ro.", `spoken answer has the address "info@example.gov.ro"`},
		{"a phone number in the spoken answer", "A doua.", "Sunați la 0800 800 800.", `spoken answer has the digit string "0800 800 800"`},
		{"a code in the spoken answer", "A doua.", "Codul este 12345.", `spoken answer has the digit string "12345"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(goodArticle, c.from, c.to, 1)
			_, err := ParseArticle("ro/sample.md", "ro", []byte(src))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadDirBaseErrors(t *testing.T) {
	en := strings.Replace(goodArticle, "lang: ro", "lang: en", 1)
	dir := writeBase(t, map[string]string{
		"ro/sample.md": goodArticle,
		"en/sample.md": en,
		"ro/lonely.md": strings.Replace(goodArticle, "id: sample", "id: lonely", 1),
		"en/broken.md": strings.Replace(strings.Replace(en, "id: sample", "id: broken", 1), "service: passport", "service: x", 1),
	})
	_, err := LoadDir(dir)
	if err == nil {
		t.Fatal("LoadDir accepted a broken base")
	}
	for _, want := range []string{
		`lonely.md:1: article "lonely" has no en version`,
		`broken.md:5: unknown service "x"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func search(t *testing.T, ix *Index, lang, q string) []Result {
	t.Helper()
	res, err := ix.Search(context.Background(), lang, q, 5)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func top(res []Result) string {
	if len(res) == 0 {
		return "none"
	}
	return res[0].ID
}

// Diacritics in either spelling, or none, and inflected forms find the same
// article with the same score.
func TestSearchDiacriticsAndInflection(t *testing.T) {
	ix := shipped(t)
	forms := []string{
		"am pierdut buletinul și mâine plec din țară", // comma below (U+0219, U+021B)
		"am pierdut buletinul şi mâine plec din ţară", // cedilla (U+015F, U+0163)
		"am pierdut buletinul si maine plec din tara", // none
		"AM PIERDUT BULETINUL ȘI MÂINE PLEC DIN ȚARĂ",
		"am pierdut buletinul s\u0326i ma\u0302ine plec din t\u0326ara\u0306", // decomposed
	}
	var first []Result
	for i, q := range forms {
		res := search(t, ix, "ro", q)
		if top(res) != "cei-lost-stolen" || !res[0].Confident {
			t.Fatalf("%q: %+v, want cei-lost-stolen confident", q, res)
		}
		if i == 0 {
			first = res
		} else if res[0].Score != first[0].Score {
			t.Errorf("%q scores %v, %q scores %v", q, res[0].Score, forms[0], first[0].Score)
		}
	}
	for _, q := range []string{"pierderea buletinului", "buletine pierdute", "cartea de identitate pierdută"} {
		if got := top(search(t, ix, "ro", q)); got != "cei-lost-stolen" {
			t.Errorf("%q: top %s, want cei-lost-stolen", q, got)
		}
	}
}

func TestSearchSynonymsAndRecognitionErrors(t *testing.T) {
	ix := shipped(t)
	for _, c := range []struct{ lang, q, want string }{
		{"ro", "ce acte trebuie pentru CEI", "cei-documents"}, // synonym: CEI = buletin
		{"ro", "ce acte trebuie pentru carte de identitate", "cei-documents"},
		{"ro", "am uitat parula de la portal", "portal-password-reset"}, // recognition error
		{"ro", "pașa portul cum il obțin", "passport-obtain"},           // split word
		{"ro", "pasapotrul meu a fost furat", "passport-lost"},          // transposed letters
		{"en", "um I want to, um, reset my pasword please", "portal-password-reset"},
	} {
		if got := top(search(t, ix, c.lang, c.q)); got != c.want {
			t.Errorf("[%s] %q: top %s, want %s", c.lang, c.q, got, c.want)
		}
	}
}

// The score means something: a clear question is Confident, an
// out-of-domain one is not, and nothing but the first result is Confident.
func TestScoreBehaviour(t *testing.T) {
	ix := shipped(t)
	res := search(t, ix, "ro", "am uitat parola de la portal")
	if !res[0].Confident || res[0].Score < ConfidentScore {
		t.Errorf("clear question not confident: %+v", res[0])
	}
	for i, r := range res {
		if r.Score < 0 || r.Score > 1 {
			t.Errorf("score %v out of 0..1", r.Score)
		}
		if i > 0 && (r.Confident || r.Score > res[i-1].Score) {
			t.Errorf("result %d %+v: only the first may be confident, scores descend", i, r)
		}
	}
	for _, q := range []string{"vreau să plătesc factura la curent", "cât costă un bilet de tren la brașov", "care e scorul la meci"} {
		if res := search(t, ix, "ro", q); len(res) > 0 && res[0].Confident {
			t.Errorf("%q: confident %+v, want not", q, res[0])
		}
	}
	// Only stop words: nothing to search for.
	if res := search(t, ix, "ro", "vreau să aș dori ăă"); len(res) != 0 {
		t.Errorf("filler only: %+v", res)
	}
	if _, err := ix.Search(context.Background(), "fr", "x", 3); err == nil {
		t.Error("language fr accepted")
	}
}

// An import replaces the base atomically: searches running meanwhile see
// the old base or the new one, never an empty or half-built index.
func TestImportAtomicUnderConcurrentSearch(t *testing.T) {
	ix, _ := openIndex(t)
	ctx := context.Background()
	base := func(gen int) []Article {
		var arts []Article
		for i := range 200 {
			for _, lang := range Languages {
				arts = append(arts, Article{
					ID: fmt.Sprintf("a%d", i), Lang: lang, Service: "passport",
					Title:    fmt.Sprintf("generatie%d articol%d", gen, i),
					Keywords: []string{"comun"}, Spoken: "Ceva.", Full: "Ceva.",
				})
			}
		}
		return arts
	}
	if err := ix.Import(ctx, base(0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	var searches atomic.Int64
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := ix.Search(ctx, "ro", "comun", 50)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				searches.Add(1)
				if len(res) != 50 {
					bad.Store(fmt.Sprintf("%d results, want 50 (index seen half-built)", len(res)))
					return
				}
				gen := strings.Fields(res[0].Title)[0]
				for _, r := range res {
					if !strings.HasPrefix(r.Title, gen+" ") {
						bad.Store(fmt.Sprintf("mixed generations: %q and %q", res[0].Title, r.Title))
						return
					}
				}
			}
		}()
	}
	for gen := 1; gen <= 8; gen++ {
		if err := ix.Import(ctx, base(gen)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	if searches.Load() == 0 {
		t.Fatal("no search ran during the imports")
	}
	if res := search(t, ix, "ro", "generatie8"); len(res) == 0 {
		t.Error("last import not visible")
	}
}

// An editor adds an article with ivrctl (another process, another
// connection): the engine's index sees it on the next search.
func TestImportSeenByAnotherConnection(t *testing.T) {
	dir := t.TempDir()
	path := IndexPath(dir)
	engine, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	ctx := context.Background()
	if _, err := engine.ImportDir(ctx, "."); err != nil {
		t.Fatal(err)
	}
	if got := top(search(t, engine, "ro", "vreau să adopt un cățel")); got != "none" {
		if res := search(t, engine, "ro", "vreau să adopt un cățel"); res[0].Confident {
			t.Fatalf("before the import: confident %s", got)
		}
	}
	arts, err := LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range Languages {
		arts = append(arts, Article{ID: "pets", Lang: lang, Service: "support_service",
			Title: "Adopția unui cățel", Keywords: []string{"adopt cățel", "câine"},
			Spoken: "Nu ne ocupăm de adopții.", Full: "Nu ne ocupăm de adopții."})
	}
	editor, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := editor.Import(ctx, arts); err != nil {
		t.Fatal(err)
	}
	editor.Close()
	res := search(t, engine, "ro", "vreau să adopt un cățel")
	if top(res) != "pets" || !res[0].Confident {
		t.Errorf("after the import: %+v, want pets confident", res)
	}
}

func TestRecordMissMasksAndCounts(t *testing.T) {
	ix, _ := openIndex(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	for _, q := range []string{
		"CNP-ul meu e 1850101123456 și telefonul 0722 123 456",
		"cnp-ul meu e 2850101123456 și telefonul  0733  999 456",
		"scrieți-mi la ion.popescu@example.ro",
	} {
		if err := ix.RecordMiss(ctx, "ro", q); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.RecordMiss(ctx, "en", "call me on +40 722 123 456"); err != nil {
		t.Fatal(err)
	}
	ms, err := ix.Misses(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("misses %+v, want 3 (two identical after masking)", ms)
	}
	if ms[0].Count != 2 || ms[0].Query != "cnp-ul meu e **********456 și telefonul **** *** 456" {
		t.Errorf("first miss %+v, want the repeated masked query counted twice", ms[0])
	}
	for _, m := range ms {
		for _, pii := range []string{"1850101123456", "722", "123 456", "popescu", "@example"} {
			if strings.Contains(m.Query, pii) {
				t.Errorf("miss %q keeps personal data %q", m.Query, pii)
			}
		}
	}
	long := strings.Repeat("ș", 400) // 800 bytes: cut on a letter boundary
	if err := ix.RecordMiss(ctx, "ro", long); err != nil {
		t.Fatal(err)
	}
	ms, _ = ix.Misses(ctx, start)
	for _, m := range ms {
		if strings.HasPrefix(m.Query, "ș") && (!utf8.ValidString(m.Query) || len(m.Query) > maxMissBytes) {
			t.Errorf("long miss stored as %d bytes, valid UTF-8 %v", len(m.Query), utf8.ValidString(m.Query))
		}
	}
	later, err := ix.Misses(ctx, time.Now().Add(time.Hour))
	if err != nil || len(later) != 0 {
		t.Errorf("misses since the future: %v, %v", later, err)
	}
	if err := ix.RecordMiss(ctx, "xx", "q"); err == nil {
		t.Error("language xx accepted")
	}
}

// Concurrent searches on one Index (the race detector checks the cache).
func TestConcurrentSearch(t *testing.T) {
	ix := shipped(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				res, err := ix.Search(context.Background(), "ro", "am uitat parola", 3)
				if err != nil || top(res) != "portal-password-reset" {
					errs <- fmt.Errorf("goroutine %d: %v %v", i, res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEmptyIndex(t *testing.T) {
	ix, _ := openIndex(t)
	res, err := ix.Search(context.Background(), "ro", "buletin", 3)
	if err != nil || len(res) != 0 {
		t.Errorf("empty index: %v, %v", res, err)
	}
}

func TestImportRejectsDuplicates(t *testing.T) {
	ix, _ := openIndex(t)
	a := Article{ID: "x", Lang: "ro", Title: "t", Service: "passport", Spoken: "s.", Full: "f"}
	err := ix.Import(context.Background(), []Article{a, a})
	if err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("err %v", err)
	}
	if err := ix.Import(context.Background(), []Article{{ID: "x", Lang: "de"}}); err == nil {
		t.Error("lang de accepted")
	}
}

// The evaluation set must stay at the targets: make test guards
// search quality.
func TestEvalTargets(t *testing.T) {
	ix := shipped(t)
	qs, err := LoadEval("eval/queries.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 150 {
		t.Errorf("%d queries, want at least 150", len(qs))
	}
	r, err := Evaluate(context.Background(), ix, qs)
	if err != nil {
		t.Fatal(err)
	}
	if r.Unanswerable < 25 {
		t.Errorf("%d unanswerable queries, want at least 25", r.Unanswerable)
	}
	var b strings.Builder
	r.Print(&b, !r.Meets() || testing.Verbose())
	t.Log("\n" + b.String())
	if !r.Meets() {
		t.Error("evaluation below target")
	}
}

func FuzzParseArticle(f *testing.F) {
	f.Add([]byte(goodArticle))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("---\nid: a\n## Spoken\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseArticle("ro/sample.md", "ro", b)
	})
}

func FuzzSearchQuery(f *testing.F) {
	ix := shipped(f)
	for _, s := range []string{"buletin", "", "\"OR\" AND NOT (", "pașa portul", "a*b^c:d{e}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		res, err := ix.Search(context.Background(), "ro", q, 3)
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		for _, r := range res {
			if r.Score < 0 || r.Score > 1 {
				t.Fatalf("%q: score %v", q, r.Score)
			}
		}
	})
}
