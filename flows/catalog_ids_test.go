package flows_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets"
)

// Every sentence id the engine's Go code names is listed in the engine's
// ids (which the shipped catalog must have, and a folder's catalog keeps),
// so no Go code asks the catalog for an id it may not have: the
// caller would hear silence.
func TestGoSentenceIDs(t *testing.T) {
	pats := []*regexp.Regexp{
		regexp.MustCompile(`sentence\("([a-z_]+\.[a-z_]+)"`),
		regexp.MustCompile(`msg\("([a-z_]+)"`), // "ask." + key
		regexp.MustCompile(`\.Text\([^,()]*, "([a-z_]+\.[a-z_]+)"`),
	}
	used := map[string]string{}
	for _, dir := range []string{".", "../ivr", "../ivr/queue", "../dialplan/sip", "../dialplan/ari", "../dialplan/esl", "../cmd/ivrd"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range pats {
				for _, m := range p.FindAllStringSubmatch(string(src), -1) {
					id := m[1]
					if i == 1 {
						id = "ask." + id
					}
					used[id] = f
				}
			}
		}
	}
	// ids built at run time: a ticket's status, a weekday
	for _, s := range tickets.Statuses {
		used["status."+string(s)] = "flows/api.go (ticket.lookup)"
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		used["weekday."+strings.ToLower(d.String())] = "flows/api.go (hours.next_open)"
	}
	if len(used) < 30 {
		t.Fatalf("found only %d ids: the patterns no longer match the code", len(used))
	}
	cat := flows.DefaultCatalog()
	for id, f := range used {
		if !cat.Has(id) {
			t.Errorf("%s names %s, which the shipped catalog does not have", f, id)
		}
		if !slices.Contains(flows.EngineIDs, id) {
			t.Errorf("%s names %s: list it in engineIDs (flows/catalog.go)", f, id)
		}
	}
}
