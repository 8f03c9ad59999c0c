package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/govline/ivr/flows"
)

// TextKB is a small knowledge base searched in memory: articles read from
// text files, ranked by the words they share with the query (weighted by
// how rare each word is, title and keywords counting more than the body).
// It stands in for the real knowledge base (package flows/kb) in the
// simulator and the conversation tests when that one is not at hand; it
// searches the articles' real text, it does not know answers in advance.
// Safe for concurrent use once loaded.
//
// The file format, one file per language (articles.ro.txt, articles.en.txt):
//
//	## ARTICLE-ID | SERVICE | Title of the article
//	keywords: words, callers, use
//	spoken: The short answer written for the ear.
//	Any further lines are the body.
type TextKB struct {
	docs map[string][]*doc // by language
	df   map[string]map[string]int
	// Threshold is the score from which an answer is Confident.
	Threshold float64
}

type doc struct {
	a     flows.Answer
	terms map[string]float64 // term -> weight
}

var _ flows.Knowledge = (*TextKB)(nil)

// LoadTextKB reads dir/articles.LANG.txt for every language found.
func LoadTextKB(dir string) (*TextKB, error) {
	files, err := filepath.Glob(filepath.Join(dir, "articles.*.txt"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("sim: no articles.LANG.txt in %s", dir)
	}
	kb := &TextKB{docs: map[string][]*doc{}, df: map[string]map[string]int{}, Threshold: 0.45}
	for _, f := range files {
		lang := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "articles."), ".txt")
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		err = kb.read(lang, fh, f)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	return kb, nil
}

func (kb *TextKB) read(lang string, r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	var cur *doc
	var body []string
	flush := func() {
		if cur == nil {
			return
		}
		for _, t := range terms(strings.Join(body, " ")) {
			cur.terms[t] = max(cur.terms[t], 1)
		}
		for t := range cur.terms {
			if kb.df[lang] == nil {
				kb.df[lang] = map[string]int{}
			}
			kb.df[lang][t]++
		}
		kb.docs[lang] = append(kb.docs[lang], cur)
	}
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(s, "## "):
			flush()
			f := strings.SplitN(strings.TrimPrefix(s, "## "), "|", 3)
			if len(f) != 3 {
				return fmt.Errorf("%s:%d: want \"## ID | SERVICE | Title\"", name, line)
			}
			cur = &doc{a: flows.Answer{ID: strings.TrimSpace(f[0]), Service: strings.TrimSpace(f[1]), Title: strings.TrimSpace(f[2])}, terms: map[string]float64{}}
			body = nil
			for _, t := range terms(cur.a.Title) {
				cur.terms[t] = 3
			}
		case cur == nil || s == "":
		case strings.HasPrefix(s, "keywords:"):
			for _, t := range terms(strings.TrimPrefix(s, "keywords:")) {
				cur.terms[t] = max(cur.terms[t], 2)
			}
		case strings.HasPrefix(s, "spoken:"):
			cur.a.Spoken = strings.TrimSpace(strings.TrimPrefix(s, "spoken:"))
			body = append(body, cur.a.Spoken)
		default:
			body = append(body, s)
		}
	}
	flush()
	return sc.Err()
}

// stopwords carry no meaning for the search (normalized, ro and en).
var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a al ale am ar as asa au ca care cat ce cel cea cei cu de din dl dna e este eu fi fie in la le lui ma mai mi mea meu mie ne nu o pe pentru poate pot prin sa se si sau sunt te tu un una unde vreau vrea as aveti avea va vom vor cum imi imi
	the a an and or of to in on for is are be i my me you your we our can how do does what when where with it this that please want need would like have has at by from`) {
		stopwords[w] = true
	}
}

// terms are the normalized words of s without stop words, cut to their
// first six letters (a crude stemmer for ro and en).
func terms(s string) []string {
	var out []string
	for _, w := range strings.Fields(flows.Normalize(s)) {
		if stopwords[w] || len(w) < 2 {
			continue
		}
		if r := []rune(w); len(r) > 6 {
			w = string(r[:6])
		}
		out = append(out, w)
	}
	return out
}

// Search ranks the articles of lang for q.
func (kb *TextKB) Search(ctx context.Context, lang, q string, limit int) ([]flows.Answer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	docs := kb.docs[lang]
	qt := map[string]bool{}
	for _, t := range terms(q) {
		qt[t] = true
	}
	if len(qt) == 0 {
		return nil, nil
	}
	n := float64(len(docs))
	var total float64
	idf := map[string]float64{}
	for t := range qt {
		idf[t] = math.Log(1 + n/float64(1+kb.df[lang][t]))
		total += idf[t]
	}
	var out []flows.Answer
	for _, d := range docs {
		var s float64
		for t := range qt {
			s += d.terms[t] * idf[t]
		}
		if s == 0 {
			continue
		}
		a := d.a
		a.Score = math.Round(s/total/3*1000) / 1000 // 1: every query word in the title
		a.Confident = a.Score >= kb.Threshold
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].ID < out[j].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
