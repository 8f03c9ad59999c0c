package tickets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/govline/ivr/store"
)

// The tamper-evident chain (docs/operations.md, "Tamper evidence").
//
// Every audit row and every ticket_events row has one link in chain_links:
// its place (seq, from 1) in a chain, the SHA-256 of its canonical form in
// that chain (row_hash) and the SHA-256 of the previous link's hash (32
// zero bytes before the first) followed by row_hash (hash), which fixes
// the row's place. The append-only
// triggers keep honest code from changing the rows; the chain makes a
// change by anyone who drops them visible: a changed row no longer matches
// its row_hash, a deleted row leaves a link without its row, an inserted
// row has no link, and links rewritten to match no longer lead to the head
// hashes kept outside the database (ivrctl audit head).
//
// Which chain a row is in:
//   - a ticket event: the chain of the provider that owns the ticket when
//     the event is written ("provider:ID"): the created event's provider,
//     and the provider a transfer leaves for the transfer event itself;
//   - an audit row: the chain of the provider of the user named in it when
//     that user exists ("provider:ID"), else the line's chain ("line"):
//     ivrctl, the engine itself, failed sign-ins with unknown names.
//
// What is outside the chain: data.caller and data.personal of an event
// (the caller's number and the sensitive answers, personal data that
// erasure blanks), transcripts, the materialized tickets row (its history
// is chained: replaying it checks the row), calls, users and sessions.
//
// Appends to one chain take turns: on PostgreSQL under a transaction-level
// advisory lock on the chain's name, taken before the row is inserted, so
// the rows of one chain have increasing ids in the order of their links; on
// SQLite the one writer already serializes them.

// LineChain is the chain of the audit rows that concern no provider.
const LineChain = "line"

// ProviderChain is the name of provider p's chain.
func ProviderChain(p string) string { return "provider:" + p }

// chainLockClass is the first key of the PostgreSQL advisory locks that
// serialize appends to a chain (the second is the hash of its name).
const chainLockClass = 0x6976_6368 // "ivch"

// Link sources.
const (
	sourceAudit = "audit"
	sourceEvent = "event"
)

// noChainKey marks a context whose writes link nothing: the benchmarks'
// baseline only (BenchmarkChain); nothing outside the package can set it.
type noChainKey struct{}

func withoutChain(ctx context.Context) context.Context {
	return context.WithValue(ctx, noChainKey{}, true)
}

func chainOff(ctx context.Context) bool { return ctx.Value(noChainKey{}) != nil }

// lockChain makes the transaction the only one appending to chain until it
// ends (PostgreSQL; SQLite has one writer).
func lockChain(ctx context.Context, tx *store.Tx, chain string) error {
	if tx.Backend() != store.Postgres || chainOff(ctx) {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(?))`, chainLockClass, chain)
	return err
}

// chainHead is the newest link of a chain.
type chainHead struct {
	seq  int64
	hash []byte // 32 zero bytes for a chain without links
}

func readHead(ctx context.Context, tx *store.Tx, chain string) (chainHead, error) {
	var h chainHead
	var hx string
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM chain_links WHERE chain = ? ORDER BY seq DESC LIMIT 1`, chain).Scan(&h.seq, &hx)
	if errors.Is(err, sql.ErrNoRows) {
		return chainHead{hash: make([]byte, sha256.Size)}, nil
	}
	if err != nil {
		return h, err
	}
	if h.hash, err = hex.DecodeString(hx); err != nil || len(h.hash) != sha256.Size {
		return h, fmt.Errorf("chain %s: head link %d: bad hash %q", chain, h.seq, hx)
	}
	return h, nil
}

// appendLink writes the link of a row after head (the transaction holds
// the chain's lock) and returns the new head.
func appendLink(ctx context.Context, tx *store.Tx, chain string, head chainHead, source string, rowID int64, row []byte) (chainHead, error) {
	seq := head.seq + 1
	rh := rowHash(chain, row)
	h := linkHash(head.hash, rh)
	_, err := tx.ExecContext(ctx, `INSERT INTO chain_links (chain, seq, source, row_id, row_hash, hash) VALUES (?, ?, ?, ?, ?, ?)`,
		chain, seq, source, rowID, hex.EncodeToString(rh), hex.EncodeToString(h))
	if err != nil {
		return head, fmt.Errorf("chain %s: append link %d: %w", chain, seq, err)
	}
	return chainHead{seq: seq, hash: h}, nil
}

// link appends the link of a row to chain, in the transaction that wrote
// the row (after lockChain).
func link(ctx context.Context, tx *store.Tx, chain, source string, rowID int64, row []byte) error {
	if chainOff(ctx) {
		return nil
	}
	if tx.Backend() == store.Postgres {
		// One round trip under the chain's lock: the server reads the head
		// and computes the link's hash (linkHash, in SQL; verify recomputes
		// it in Go, and the conformance kit checks that they agree).
		rh := hex.EncodeToString(rowHash(chain, row))
		_, err := tx.ExecContext(ctx, `INSERT INTO chain_links (chain, seq, source, row_id, row_hash, hash)
			SELECT ?::text, coalesce(h.seq, 0) + 1, ?::text, ?::bigint, ?::text,
				encode(sha256(coalesce(decode(h.hash, 'hex'), decode(repeat('00', 32), 'hex')) || decode(?::text, 'hex')), 'hex')
			FROM (SELECT 1) one LEFT JOIN LATERAL
				(SELECT l.seq, l.hash FROM chain_links l WHERE l.chain = ?::text ORDER BY l.seq DESC LIMIT 1) h ON true`,
			chain, source, rowID, rh, rh, chain)
		if err != nil {
			return fmt.Errorf("chain %s: append link: %w", chain, err)
		}
		return nil
	}
	head, err := readHead(ctx, tx, chain)
	if err != nil {
		return err
	}
	_, err = appendLink(ctx, tx, chain, head, source, rowID, row)
	return err
}

// rowHash is the SHA-256 of a row's canonical form in its chain: the JSON
// array ["ivr-chain-1", chain, row]. (Its place is fixed by the link's
// hash, which covers the previous link's.)
func rowHash(chain string, row []byte) []byte {
	b, _ := json.Marshal([]any{"ivr-chain-1", chain, json.RawMessage(row)})
	s := sha256.Sum256(b)
	return s[:]
}

// linkHash is the SHA-256 of the previous link's hash followed by the
// row's hash.
func linkHash(prev, row []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(row)
	return h.Sum(nil)
}

// auditRow is the canonical form of an audit row: the JSON array
// ["audit", id, at_ns, user, action, target, detail, address, ok].
func auditRow(id, atNS int64, user, action, target, detail, address string, ok int64) []byte {
	b, _ := json.Marshal([]any{sourceAudit, id, atNS, text(user), text(action), text(target), text(detail), text(address), ok})
	return b
}

// text is a column's text in a canonical form: itself when it is valid
// UTF-8, else ["hex", its bytes in hexadecimal] (JSON would turn every
// invalid byte into U+FFFD, and two different texts into one).
func text(s string) any {
	if utf8.ValidString(s) {
		return s
	}
	return []string{"hex", hex.EncodeToString([]byte(s))}
}

// eventRow is the canonical form of a ticket_events row: the JSON array
// ["event", id, ticket, at_ns, actor, kind, data, supersedes (or null)],
// data in canonical form without caller and personal (canonicalData).
func eventRow(id int64, ticket string, atNS int64, actor, kind, data string, supersedes sql.NullInt64) []byte {
	var sup any
	if supersedes.Valid {
		sup = supersedes.Int64
	}
	b, _ := json.Marshal([]any{sourceEvent, id, text(ticket), atNS, text(actor), text(kind), canonicalData(data), sup})
	return b
}

// unchained are the keys of an event's data that the chain leaves out:
// personal data that erasure blanks (caller to "", personal to {}).
var unchained = []string{"caller", "personal"}

// canonicalData is an event's data as the chain hashes it: the JSON
// object without the unchained keys, its keys sorted at every level, no
// spaces, integers in decimal and other numbers in Go's shortest form; so
// a database that re-encodes the JSON (SQLite's json_set, PostgreSQL's
// jsonb) changes nothing. Data that is not a JSON object is hashed as its
// text (text).
func canonicalData(data string) json.RawMessage {
	if !utf8.ValidString(data) {
		b, _ := json.Marshal(text(data))
		return b
	}
	d := json.NewDecoder(strings.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		b, _ := json.Marshal(data)
		return b
	}
	m, ok := v.(map[string]any)
	if !ok {
		b, _ := json.Marshal(data)
		return b
	}
	for _, k := range unchained {
		delete(m, k)
	}
	b, err := json.Marshal(canonicalNumbers(m))
	if err != nil {
		b, _ = json.Marshal(data)
	}
	return b
}

func canonicalNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = canonicalNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = canonicalNumbers(e)
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return json.Number(strconv.FormatInt(i, 10))
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil && !math.IsInf(f, 0) {
			if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	return v
}

// auditChain is the chain of an audit row naming user: the chain of the
// user's provider, or the line's.
func auditChain(ctx context.Context, tx *store.Tx, user string) (string, error) {
	if chainOff(ctx) {
		return LineChain, nil
	}
	var p string
	err := tx.QueryRowContext(ctx, `SELECT provider FROM users WHERE name = ?`, user).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && p == "") {
		return LineChain, nil
	}
	if err != nil {
		return "", err
	}
	return ProviderChain(p), nil
}

// eventChain is the chain of an event of a ticket of provider p.
func eventChain(p string) string {
	if p == "" {
		p = DefaultProvider
	}
	return ProviderChain(p)
}

// linkExisting links, once, the rows written before the chain existed
// (chain_backfill): the audit rows, then the events, each in id order. It
// runs before the first write of the store (inTx); on PostgreSQL the
// engines starting together take turns on chain_backfill's row.
func (s *Store) linkExisting(ctx context.Context) error {
	if s.chained.Load() || s.db.ReadOnly() {
		return nil
	}
	err := s.db.Write(ctx, func(tx *store.Tx) error {
		var auditMax, eventsMax, done int64
		err := tx.QueryRowContext(ctx, `SELECT audit_max, events_max, done_ns FROM chain_backfill WHERE id = 1`+s.db.ForUpdate()).
			Scan(&auditMax, &eventsMax, &done)
		if err != nil {
			return err
		}
		if done != 0 {
			return nil
		}
		b := backfill{tx: tx, heads: map[string]chainHead{}}
		if err := b.audit(ctx, auditMax); err != nil {
			return err
		}
		if err := b.events(ctx, eventsMax); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE chain_backfill SET done_ns = ? WHERE id = 1`, max(time.Now().UnixNano(), 1))
		return err
	})
	if err != nil {
		return fmt.Errorf("tickets: link the rows written before the audit chain: %w", err)
	}
	s.chained.Store(true)
	return nil
}

// backfill is linkExisting's work in its transaction.
type backfill struct {
	tx    *store.Tx
	heads map[string]chainHead
}

const backfillBatch = 1000

func (b *backfill) append(ctx context.Context, chain, source string, id int64, row []byte) error {
	head, ok := b.heads[chain]
	if !ok {
		if err := lockChain(ctx, b.tx, chain); err != nil {
			return err
		}
		var err error
		if head, err = readHead(ctx, b.tx, chain); err != nil {
			return err
		}
	}
	head, err := appendLink(ctx, b.tx, chain, head, source, id, row)
	if err != nil {
		return err
	}
	b.heads[chain] = head
	return nil
}

type pendingRow struct {
	chain string
	id    int64
	row   []byte
}

func (b *backfill) audit(ctx context.Context, upTo int64) error {
	users := map[string]string{}
	rows, err := b.tx.QueryContext(ctx, `SELECT name, provider FROM users`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n, p string
		if err := rows.Scan(&n, &p); err != nil {
			rows.Close()
			return err
		}
		users[n] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for after := int64(0); ; {
		var batch []pendingRow
		rows, err := b.tx.QueryContext(ctx, `SELECT a.id, a.at_ns, a."user", a.action, a.target, a.detail, a.address, a.ok FROM audit a
			WHERE a.id > ? AND a.id <= ? AND NOT EXISTS (SELECT 1 FROM chain_links l WHERE l.source = 'audit' AND l.row_id = a.id)
			ORDER BY a.id LIMIT ?`, after, upTo, backfillBatch)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, at, ok int64
			var user, action, target, detail, address string
			if err := rows.Scan(&id, &at, &user, &action, &target, &detail, &address, &ok); err != nil {
				rows.Close()
				return err
			}
			chain := LineChain
			if p, found := users[user]; found && p != "" {
				chain = ProviderChain(p)
			}
			batch = append(batch, pendingRow{chain, id, auditRow(id, at, user, action, target, detail, address, ok)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range batch {
			if err := b.append(ctx, r.chain, sourceAudit, r.id, r.row); err != nil {
				return err
			}
			after = r.id
		}
		if len(batch) < backfillBatch {
			return nil
		}
	}
}

func (b *backfill) events(ctx context.Context, upTo int64) error {
	owner := map[string]string{} // ticket -> its provider as the events go
	for after := int64(0); ; {
		var batch []pendingRow
		rows, err := b.tx.QueryContext(ctx, `SELECT `+eventColumns+` FROM ticket_events e
			WHERE e.id > ? AND e.id <= ? AND NOT EXISTS (SELECT 1 FROM chain_links l WHERE l.source = 'event' AND l.row_id = e.id)
			ORDER BY e.id LIMIT ?`, after, upTo, backfillBatch)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, at int64
			var ticket, actor, kind, data string
			var sup sql.NullInt64
			if err := rows.Scan(&id, &ticket, &at, &actor, &kind, &data, &sup); err != nil {
				rows.Close()
				return err
			}
			var d EventData
			_ = json.Unmarshal([]byte(data), &d)
			p, known := owner[ticket]
			if kind == string(EventCreated) || !known {
				p = d.Provider
			}
			batch = append(batch, pendingRow{eventChain(p), id, eventRow(id, ticket, at, actor, kind, data, sup)})
			if kind == string(EventTransfer) && d.To != "" {
				p = d.To
			}
			owner[ticket] = p
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range batch {
			if err := b.append(ctx, r.chain, sourceEvent, r.id, r.row); err != nil {
				return err
			}
			after = r.id
		}
		if len(batch) < backfillBatch {
			return nil
		}
	}
}

// FindingKind says what verification found wrong with a row or a link.
type FindingKind string

// Findings.
const (
	// FindingChanged: the row no longer has the content its link hashed.
	FindingChanged FindingKind = "changed"
	// FindingDeleted: a link whose row is gone, or links missing from a
	// chain (a gap in seq, or the chain shorter than an anchor).
	FindingDeleted FindingKind = "deleted"
	// FindingInserted: a row without a link (written behind the engine's
	// back).
	FindingInserted FindingKind = "inserted"
	// FindingOutOfOrder: a link to a row whose id is not above the previous
	// row of its table in the chain, or to a row linked already.
	FindingOutOfOrder FindingKind = "out_of_order"
	// FindingRelinked: a link's hash does not follow from the previous
	// link's: links were rewritten at or before it.
	FindingRelinked FindingKind = "relinked"
	// FindingAnchor: the chain's link at an anchored place has another hash
	// than the anchor kept outside the database: the chain was recomputed.
	FindingAnchor FindingKind = "anchor_mismatch"
)

// ChainFinding is the first thing wrong in a chain (or a row no chain
// covers).
type ChainFinding struct {
	Chain  string      `json:"chain,omitempty"`
	Seq    int64       `json:"seq,omitempty"` // the link, 0 for a row without one
	Kind   FindingKind `json:"kind"`
	Source string      `json:"source,omitempty"` // "audit" or "event"
	Row    int64       `json:"row,omitempty"`    // the row's id in audit or ticket_events
	Detail string      `json:"detail"`
}

func (f ChainFinding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", f.Kind)
	if f.Source != "" {
		table := "audit"
		if f.Source == sourceEvent {
			table = "ticket_events"
		}
		fmt.Fprintf(&b, " %s id %d", table, f.Row)
	}
	if f.Chain != "" {
		fmt.Fprintf(&b, " (chain %s", f.Chain)
		if f.Seq != 0 {
			fmt.Fprintf(&b, ", link %d", f.Seq)
		}
		b.WriteString(")")
	}
	if f.Detail != "" {
		b.WriteString(": " + f.Detail)
	}
	return b.String()
}

// ChainHead is a chain's newest link: what to keep outside the database
// (ivrctl audit head) and give back to VerifyChains as an anchor.
type ChainHead struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	Hash  string `json:"hash"`
}

// ChainReport is one chain as verification walked it.
type ChainReport struct {
	ChainHead
	Audit   int64         `json:"audit"`  // links to audit rows
	Events  int64         `json:"events"` // links to ticket_events rows
	Finding *ChainFinding `json:"finding,omitempty"`
}

// Verification is the result of VerifyChains.
type Verification struct {
	Chains []ChainReport `json:"chains"`
	// Findings are the first finding of each bad chain, then the first
	// row of each table without a link. Empty when all is well.
	Findings []ChainFinding `json:"findings"`
	// Pending says the rows written before the chain existed are not
	// linked yet (no engine of this version has written since the
	// upgrade): they are not reported as inserted.
	Pending bool `json:"pending,omitempty"`
}

// OK reports whether verification found nothing wrong.
func (v Verification) OK() bool { return len(v.Findings) == 0 }

// VerifyOptions narrow VerifyChains.
type VerifyOptions struct {
	// Chain, when set, verifies that chain only (a chain name, or a
	// provider id for its chain); rows without a link are then not looked
	// for.
	Chain string
	// Anchors are heads kept outside the database (ChainHeads earlier):
	// each chain must still have the same hash at the same place.
	Anchors []ChainHead
}

// ChainHeads returns the newest link of every chain, by chain name.
func (s *Store) ChainHeads(ctx context.Context) ([]ChainHead, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT l.chain, l.seq, l.hash FROM chain_links l
		WHERE l.seq = (SELECT max(m.seq) FROM chain_links m WHERE m.chain = l.chain) ORDER BY l.chain`)
	if err != nil {
		return nil, fmt.Errorf("tickets: chain heads: %w", err)
	}
	defer rows.Close()
	out := []ChainHead{}
	for rows.Next() {
		var h ChainHead
		if err := rows.Scan(&h.Chain, &h.Seq, &h.Hash); err != nil {
			return nil, fmt.Errorf("tickets: chain heads: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tickets: chain heads: %w", err)
	}
	return out, nil
}

// VerifyChains walks every chain (or o.Chain) link by link and recomputes
// it from the rows; it reports, per chain, its counts and head and the
// first bad link (a changed row, a deleted row or links, a link out of
// order, a rewritten link), then the first row of each table that has no
// link (inserted), then the anchors that no longer match. It may run
// while engines write: a row and its link commit together and a chain's
// links commit in seq order, so each chain (one query) is read as it was
// at one moment, and so is each table's search for rows without a link.
func (s *Store) VerifyChains(ctx context.Context, o VerifyOptions) (Verification, error) {
	v := Verification{Chains: []ChainReport{}, Findings: []ChainFinding{}}
	fail := func(err error) (Verification, error) {
		return Verification{}, fmt.Errorf("tickets: verify chains: %w", err)
	}
	var auditMax, eventsMax, done int64
	if err := s.db.QueryRowContext(ctx, `SELECT audit_max, events_max, done_ns FROM chain_backfill WHERE id = 1`).
		Scan(&auditMax, &eventsMax, &done); err != nil {
		return fail(fmt.Errorf("no audit chain in this database (an engine of this version adds it when it starts): %w", err))
	}
	v.Pending = done == 0
	chains, err := s.chainNames(ctx)
	if err != nil {
		return fail(err)
	}
	if o.Chain != "" {
		want := o.Chain
		if !containsString(chains, want) && containsString(chains, ProviderChain(want)) {
			want = ProviderChain(want)
		}
		if !containsString(chains, want) {
			return fail(fmt.Errorf("chain %q %w (chains: %s)", o.Chain, ErrNotFound, strings.Join(chains, ", ")))
		}
		chains = []string{want}
	}
	for _, c := range chains {
		r, err := s.verifyChain(ctx, c)
		if err != nil {
			return fail(err)
		}
		v.Chains = append(v.Chains, r)
		if r.Finding != nil {
			v.Findings = append(v.Findings, *r.Finding)
		}
	}
	if o.Chain == "" {
		for _, src := range []struct {
			source, table string
			pendingMax    int64
		}{{sourceAudit, "audit", auditMax}, {sourceEvent, "ticket_events", eventsMax}} {
			f, err := s.unlinked(ctx, src.source, src.table, v.Pending, src.pendingMax)
			if err != nil {
				return fail(err)
			}
			if f != nil {
				v.Findings = append(v.Findings, *f)
			}
		}
	}
	for _, a := range o.Anchors {
		if o.Chain != "" && a.Chain != v.Chains[0].Chain {
			continue
		}
		f, err := s.checkAnchor(ctx, a)
		if err != nil {
			return fail(err)
		}
		if f != nil {
			v.Findings = append(v.Findings, *f)
		}
	}
	return v, nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Store) chainNames(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT chain FROM chain_links ORDER BY chain`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Strings(out)
	return out, rows.Err()
}

// verifyChain walks chain's links in seq order with their rows, and stops
// at the first finding.
func (s *Store) verifyChain(ctx context.Context, chain string) (ChainReport, error) {
	r := ChainReport{ChainHead: ChainHead{Chain: chain}}
	rows, err := s.db.QueryContext(ctx, `SELECT l.seq, l.source, l.row_id, l.row_hash, l.hash,
		a.id, a.at_ns, a."user", a.action, a.target, a.detail, a.address, a.ok,
		e.id, e.ticket, e.at_ns, e.actor, e.kind, e.data, e.supersedes
		FROM chain_links l
		LEFT JOIN audit a ON l.source = 'audit' AND a.id = l.row_id
		LEFT JOIN ticket_events e ON l.source = 'event' AND e.id = l.row_id
		WHERE l.chain = ? ORDER BY l.seq`, chain)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	prev := make([]byte, sha256.Size)
	last := map[string]int64{}
	for rows.Next() {
		var (
			seq, rowID             int64
			source, rhx, hx        string
			aID, aAt, aOK          sql.NullInt64
			aUser, aAct, aTarget   sql.NullString
			aDetail, aAddr         sql.NullString
			eID, eAt, eSup         sql.NullInt64
			eTicket, eActor, eKind sql.NullString
			eData                  sql.NullString
		)
		if err := rows.Scan(&seq, &source, &rowID, &rhx, &hx, &aID, &aAt, &aUser, &aAct, &aTarget, &aDetail, &aAddr, &aOK,
			&eID, &eTicket, &eAt, &eActor, &eKind, &eData, &eSup); err != nil {
			return r, err
		}
		found := func(kind FindingKind, detail string) (ChainReport, error) {
			r.Finding = &ChainFinding{Chain: chain, Seq: seq, Kind: kind, Source: source, Row: rowID, Detail: detail}
			return r, nil
		}
		if seq != r.Seq+1 {
			missing := fmt.Sprintf("links %d to %d are missing", r.Seq+1, seq-1)
			if seq-1 == r.Seq+1 {
				missing = fmt.Sprintf("link %d is missing", r.Seq+1)
			}
			r.Finding = &ChainFinding{Chain: chain, Seq: r.Seq + 1, Kind: FindingDeleted,
				Detail: fmt.Sprintf("%s (the next link covers %s %d)", missing, source, rowID)}
			return r, nil
		}
		var row []byte
		switch {
		case source == sourceAudit && aID.Valid:
			row = auditRow(aID.Int64, aAt.Int64, aUser.String, aAct.String, aTarget.String, aDetail.String, aAddr.String, aOK.Int64)
		case source == sourceEvent && eID.Valid:
			row = eventRow(eID.Int64, eTicket.String, eAt.Int64, eActor.String, eKind.String, eData.String, eSup)
		default:
			return found(FindingDeleted, "the row of this link is gone")
		}
		if rowID <= last[source] {
			return found(FindingOutOfOrder, fmt.Sprintf("the chain's previous %s row is id %d", source, last[source]))
		}
		rh := hex.EncodeToString(rowHash(chain, row))
		if rh != rhx {
			return found(FindingChanged, "the row differs from what its link hashed")
		}
		stored, err := hex.DecodeString(hx)
		if err != nil || !bytes.Equal(stored, linkHash(prev, mustHex(rhx))) {
			return found(FindingRelinked, "the link's hash does not follow from the previous link: links were rewritten at or before it")
		}
		prev, last[source] = stored, rowID
		r.Seq, r.Hash = seq, hx
		if source == sourceAudit {
			r.Audit++
		} else {
			r.Events++
		}
	}
	return r, rows.Err()
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// unlinked finds the first row of table that no link covers (while the
// backfill is pending, only above the rows it will link), and a row that
// two links cover.
func (s *Store) unlinked(ctx context.Context, source, table string, pending bool, pendingMax int64) (*ChainFinding, error) {
	q := `SELECT min(t.id) FROM ` + table + ` t WHERE NOT EXISTS (SELECT 1 FROM chain_links l WHERE l.source = ? AND l.row_id = t.id)`
	args := []any{source}
	if pending {
		q, args = q+` AND t.id > ?`, append(args, pendingMax)
	}
	var id sql.NullInt64
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&id)
	if err != nil {
		return nil, err
	}
	if id.Valid {
		return &ChainFinding{Kind: FindingInserted, Source: source, Row: id.Int64, Detail: "the row has no link: it was not written by the engine"}, nil
	}
	var dup sql.NullInt64
	var chain sql.NullString
	err = s.db.QueryRowContext(ctx, `SELECT row_id, min(chain) FROM chain_links WHERE source = ? GROUP BY row_id HAVING count(*) > 1 ORDER BY row_id LIMIT 1`, source).
		Scan(&dup, &chain)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &ChainFinding{Chain: chain.String, Kind: FindingOutOfOrder, Source: source, Row: dup.Int64, Detail: "the row has more than one link"}, nil
}

// checkAnchor compares a head kept outside the database with the chain.
func (s *Store) checkAnchor(ctx context.Context, a ChainHead) (*ChainFinding, error) {
	var hx, source string
	var rowID int64
	err := s.db.QueryRowContext(ctx, `SELECT hash, source, row_id FROM chain_links WHERE chain = ? AND seq = ?`, a.Chain, a.Seq).Scan(&hx, &source, &rowID)
	if errors.Is(err, sql.ErrNoRows) {
		return &ChainFinding{Chain: a.Chain, Seq: a.Seq, Kind: FindingDeleted,
			Detail: fmt.Sprintf("the anchor names link %d, which the chain no longer has", a.Seq)}, nil
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(hx, a.Hash) {
		return &ChainFinding{Chain: a.Chain, Seq: a.Seq, Kind: FindingAnchor, Source: source, Row: rowID,
			Detail: fmt.Sprintf("link %d has hash %s, the anchor %s: the chain was recomputed", a.Seq, hx, a.Hash)}, nil
	}
	return nil, nil
}
