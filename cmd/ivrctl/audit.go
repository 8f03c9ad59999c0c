package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/govline/ivr/tickets"
)

// exitFindings is the status of "ivrctl audit verify" when it found a
// changed, deleted or inserted row (a monitoring job tells it from a
// verification that could not run, 1).
const exitFindings = 3

const auditUsage = `Usage: ivrctl audit SUBCOMMAND [FLAGS]

The tamper-evident chain of the audit log and the ticket history
(docs/operations.md, "Tamper evidence"). Read-only: safe while ivrd runs.

Subcommands:
  verify [--chain NAME] [--anchor FILE] [--json]
                         recompute every chain (or one: "line", "provider:ID" or a
                         provider ID) from the rows; print each chain's links and
                         head, or the first changed, deleted or inserted row.
                         --anchor FILE: the output of an earlier "audit head",
                         kept outside the database; each chain must still pass
                         through it. Exit status 3 when something is found.
  head [--json]          the head of each chain: keep it outside the database
                         (print it, mail it, store it elsewhere) as an anchor
  list ...               the audit log, newest first (as "ivrctl users audit")
`

// runAudit dispatches "ivrctl audit SUBCOMMAND".
func runAudit(args []string, stdout, stderr io.Writer) int {
	return group{name: "audit", usage: auditUsage, missing: " (verify, head or list)", subs: map[string]command{
		"verify": runAuditVerify,
		"head":   runAuditHead,
		"list":   runUsersAudit,
	}}.run(args, stdout, stderr)
}

func runAuditVerify(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("audit verify", "ivrctl audit verify [--chain NAME] [--anchor FILE] [--json] [--data DIR]",
		`print the verification as JSON: {"ok":..., "chains":[...], "findings":[...]}`, stderr)
	var o tickets.VerifyOptions
	fs.StringVar(&o.Chain, "chain", "", "verify only the chain `NAME` (line, provider:ID, or a provider ID)")
	anchor := fs.String("anchor", "", "`FILE` written by an earlier \"ivrctl audit head\" (text or --json): each chain must still pass through its head")
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	if *anchor != "" {
		heads, err := readAnchors(*anchor)
		if err != nil {
			return fail(stderr, err)
		}
		o.Anchors = heads
	}
	return withStore(data, stderr, func(ctx context.Context, s conn) int {
		v, err := s.VerifyChains(ctx, o)
		if err != nil {
			return fail(stderr, err)
		}
		status := exitOK
		if !v.OK() {
			status = exitFindings
		}
		if *asJSON {
			if st := writeJSON(stdout, stderr, struct {
				OK bool `json:"ok"`
				tickets.Verification
			}{v.OK(), v}); st != exitOK {
				return st
			}
			return status
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "CHAIN\tLINKS\tAUDIT\tEVENTS\tHEAD\tSTATE")
		var links int64
		for _, c := range v.Chains {
			state := "ok"
			if c.Finding != nil {
				state = "BAD from link " + strconv.FormatInt(c.Finding.Seq, 10)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", c.Chain, c.Seq, c.Audit, c.Events, orDash(c.Hash), state)
			links += c.Seq
		}
		if err := tw.Flush(); err != nil {
			return fail(stderr, err)
		}
		if v.Pending {
			fmt.Fprintln(stdout, "note: the rows written before the upgrade are not linked yet (the engine's next write links them)")
		}
		if v.OK() {
			fmt.Fprintf(stdout, "ok: %s, %s verified", plural(len(v.Chains), "chain"), plural(int(links), "link"))
			if len(o.Anchors) > 0 {
				fmt.Fprintf(stdout, ", %s matched", plural(len(o.Anchors), "anchor"))
			}
			fmt.Fprintln(stdout)
			return exitOK
		}
		for _, f := range v.Findings {
			fmt.Fprintf(stdout, "FOUND %s\n", f)
		}
		return status
	})
}

func runAuditHead(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("audit head", "ivrctl audit head [--json] [--data DIR]", `print {"heads":[...]} as JSON`, stderr)
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	return headListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]tickets.ChainHead, error) {
		return s.ChainHeads(ctx)
	})
}

var headListing = listing[tickets.ChainHead]{
	key:       "heads",
	header:    "CHAIN\tSEQ\tHASH",
	emptyJSON: true,
	empty:     "no chain yet (nothing audited, no ticket)",
	row: func(w io.Writer, h tickets.ChainHead) {
		fmt.Fprintf(w, "%s\t%d\t%s\n", h.Chain, h.Seq, h.Hash)
	},
}

// readAnchors reads the output of "ivrctl audit head": its JSON, or its
// table (CHAIN SEQ HASH a line; the header, blank lines and lines starting
// with # are skipped).
func readAnchors(path string) ([]tickets.ChainHead, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var v struct {
			Heads []tickets.ChainHead `json:"heads"`
		}
		if err := json.Unmarshal(t, &v); err != nil {
			return nil, fmt.Errorf("anchor %s: %w", path, err)
		}
		return v.Heads, nil
	}
	var heads []tickets.ChainHead
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] == "CHAIN" {
			continue
		}
		seq, err := strconv.ParseInt(f[1%len(f)], 10, 64)
		if len(f) != 3 || err != nil || len(f[2]) != 64 {
			return nil, fmt.Errorf("anchor %s:%d: want CHAIN SEQ HASH (the output of ivrctl audit head)", path, n)
		}
		heads = append(heads, tickets.ChainHead{Chain: f[0], Seq: seq, Hash: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("anchor %s: %w", path, err)
	}
	if len(heads) == 0 {
		return nil, fmt.Errorf("anchor %s: no head in it", path)
	}
	return heads, nil
}

// plural is "1 chain", "2 chains".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
