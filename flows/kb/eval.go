package kb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// EvalQuery is one line of the evaluation set: what a caller says and the
// article that answers it ("none" when the base cannot).
type EvalQuery struct {
	Expected string // article id or "none"
	Lang     string
	Query    string
	Line     int
}

// Evaluation targets (issue 5): make eval and TestEvalTargets check them.
const (
	TargetTop1 = 0.90
	TargetTop3 = 0.97
	TargetNone = 0.80
)

// LoadEval reads an evaluation file: "EXPECTED | LANG | QUERY" a line,
// # comments.
func LoadEval(path string) ([]EvalQuery, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kb: %w", err)
	}
	var qs []EvalQuery
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "|", 3)
		if len(f) != 3 {
			errs = append(errs, fmt.Errorf("%s:%d: want EXPECTED | LANG | QUERY", path, n))
			continue
		}
		q := EvalQuery{strings.TrimSpace(f[0]), strings.TrimSpace(f[1]), strings.TrimSpace(f[2]), n}
		if !validLang(q.Lang) || q.Query == "" || q.Expected == "" {
			errs = append(errs, fmt.Errorf("%s:%d: bad language or empty field", path, n))
			continue
		}
		qs = append(qs, q)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return qs, nil
}

// EvalReport is the outcome of an evaluation.
type EvalReport struct {
	Answerable, Unanswerable int
	Top1, Top3               int // answerable queries whose article is first / in the first three (score >= HandoffScore)
	Top1Confident            int // ... first and Confident: answered without asking back
	NoneCorrect              int // unanswerable queries whose first result is not Confident
	Failures                 []string
}

// Rates.
func (r EvalReport) Top1Rate() float64 { return ratio(r.Top1, r.Answerable) }
func (r EvalReport) Top3Rate() float64 { return ratio(r.Top3, r.Answerable) }
func (r EvalReport) NoneRate() float64 { return ratio(r.NoneCorrect, r.Unanswerable) }
func (r EvalReport) ConfidentRate() float64 {
	return ratio(r.Top1Confident, r.Answerable)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Evaluate runs every query. A result counts for top-1/top-3 only when it
// scores at least HandoffScore (a flow would offer it); an unanswerable
// query is recognised when the first result is not Confident (the flow
// does not speak a wrong answer).
func Evaluate(ctx context.Context, ix *Index, qs []EvalQuery) (EvalReport, error) {
	var r EvalReport
	for _, q := range qs {
		res, err := ix.Search(ctx, q.Lang, q.Query, 3)
		if err != nil {
			return r, err
		}
		desc := "no result"
		if len(res) > 0 {
			desc = fmt.Sprintf("%s %.2f", res[0].ID, res[0].Score)
			if len(res) > 1 {
				desc += fmt.Sprintf(", %s %.2f", res[1].ID, res[1].Score)
			}
		}
		if q.Expected == "none" {
			r.Unanswerable++
			if len(res) == 0 || !res[0].Confident {
				r.NoneCorrect++
			} else {
				r.Failures = append(r.Failures, fmt.Sprintf("line %d [%s] %q: want none, got %s", q.Line, q.Lang, q.Query, desc))
			}
			continue
		}
		r.Answerable++
		rank := -1
		for i, x := range res {
			if x.ID == q.Expected && x.Score >= HandoffScore {
				rank = i
				break
			}
		}
		switch {
		case rank == 0:
			r.Top1++
			r.Top3++
			if res[0].Confident {
				r.Top1Confident++
			} else {
				r.Failures = append(r.Failures, fmt.Sprintf("line %d [%s] %q: %s first but not confident (%s)", q.Line, q.Lang, q.Query, q.Expected, desc))
			}
		case rank > 0:
			r.Top3++
			r.Failures = append(r.Failures, fmt.Sprintf("line %d [%s] %q: want %s, ranked %d (%s)", q.Line, q.Lang, q.Query, q.Expected, rank+1, desc))
		default:
			r.Failures = append(r.Failures, fmt.Sprintf("line %d [%s] %q: want %s, got %s", q.Line, q.Lang, q.Query, q.Expected, desc))
		}
	}
	return r, nil
}

// Print writes the report as make eval shows it.
func (r EvalReport) Print(w io.Writer, verbose bool) {
	if verbose {
		for _, f := range r.Failures {
			fmt.Fprintln(w, "  ", f)
		}
	}
	mark := func(v, t float64) string {
		if v >= t {
			return "ok"
		}
		return "BELOW TARGET"
	}
	fmt.Fprintf(w, "queries: %d answerable, %d unanswerable\n", r.Answerable, r.Unanswerable)
	fmt.Fprintf(w, "top-1:          %5.1f%%  (%d/%d, target %.0f%%) %s\n", 100*r.Top1Rate(), r.Top1, r.Answerable, 100*TargetTop1, mark(r.Top1Rate(), TargetTop1))
	fmt.Fprintf(w, "top-3:          %5.1f%%  (%d/%d, target %.0f%%) %s\n", 100*r.Top3Rate(), r.Top3, r.Answerable, 100*TargetTop3, mark(r.Top3Rate(), TargetTop3))
	fmt.Fprintf(w, "correct none:   %5.1f%%  (%d/%d, target %.0f%%) %s\n", 100*r.NoneRate(), r.NoneCorrect, r.Unanswerable, 100*TargetNone, mark(r.NoneRate(), TargetNone))
	fmt.Fprintf(w, "top-1 confident:%5.1f%%  (%d/%d: answered without asking back)\n", 100*r.ConfidentRate(), r.Top1Confident, r.Answerable)
}

// Meets reports whether the report reaches the targets.
func (r EvalReport) Meets() bool {
	return r.Top1Rate() >= TargetTop1 && r.Top3Rate() >= TargetTop3 && r.NoneRate() >= TargetNone
}

// RivalMargin is the score difference under which two articles compete
// for a question: the first leads the second by a hair, so which of the two
// a caller hears depends on a word.
const RivalMargin = 0.05

// Rival is a pair of articles that answer the same evaluation questions
// within RivalMargin of each other.
type Rival struct {
	Lang    string
	A, B    string       // article ids, A < B
	Queries []EvalQuery  // the questions both answer
	Scores  [][2]float64 // the first and second score of each question
}

// Rivals searches every answerable query of qs and reports the pairs of
// articles whose scores for it are both worth offering (HandoffScore or
// more) and within margin of each other: articles that compete for the
// same questions, to merge, or to tell apart with keywords.
func Rivals(ctx context.Context, ix *Index, qs []EvalQuery, margin float64) ([]Rival, error) {
	byPair := map[[3]string]*Rival{}
	var order [][3]string
	for _, q := range qs {
		if q.Expected == "none" {
			continue
		}
		res, err := ix.Search(ctx, q.Lang, q.Query, 2)
		if err != nil {
			return nil, err
		}
		if len(res) < 2 || res[1].Score < HandoffScore || res[0].Score-res[1].Score >= margin {
			continue
		}
		a, b := res[0].ID, res[1].ID
		if b < a {
			a, b = b, a
		}
		k := [3]string{q.Lang, a, b}
		r, ok := byPair[k]
		if !ok {
			r = &Rival{Lang: q.Lang, A: a, B: b}
			byPair[k] = r
			order = append(order, k)
		}
		r.Queries = append(r.Queries, q)
		r.Scores = append(r.Scores, [2]float64{res[0].Score, res[1].Score})
	}
	out := make([]Rival, 0, len(order))
	for _, k := range order {
		out = append(out, *byPair[k])
	}
	return out, nil
}
