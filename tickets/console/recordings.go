package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/govline/ivr/tickets"
)

// Recordings are WAV files on the disk of the engine that took the call
// (CallRecord.Engine, CallRecord.Recording). An agent plays a call's
// recording at GET /calls/{id}/recording (or /api/calls/{id}/recording):
// the role check and the audit entry ("recording_play") are the same
// whichever engine keeps the file. A recording kept by this engine (or
// by a line of one engine, where calls name no engine) is read from the
// local disk; one kept by another engine is fetched from that engine's
// console at GET /internal/recordings/{id}, a request signed with the
// engines' shared secret (HMAC-SHA256 over the method, the path, the
// asking engine and an expiry), and streamed through to the agent. That
// endpoint answers nothing without a valid signature, and nothing at all
// when no secret is configured.

// Header names of an engine-to-engine request.
const (
	peerEngineHeader  = "X-IVR-Engine"
	peerExpiresHeader = "X-IVR-Expires"
	peerSigHeader     = "X-IVR-Signature"
	// peerSkew is how long a signed request stays valid.
	peerSkew = 30 * time.Second
)

// peerSignature signs one engine-to-engine request.
func peerSignature(secret []byte, method, path, engine string, expires int64) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%s\n%s\n%s\n%d", method, path, engine, expires)
	return hex.EncodeToString(m.Sum(nil))
}

// errNoPeer: the recording is on an engine this one has no address for.
var errNoPeer = errors.New("no address for the engine")

// errEngineDown is a recording kept by an engine that cannot be reached.
type errEngineDown struct {
	engine string
	err    error
}

func (e *errEngineDown) Error() string {
	return fmt.Sprintf("the recording is kept on engine %q, which does not answer (%v); it can be played when that engine is back", e.engine, e.err)
}

func (e *errEngineDown) Unwrap() error { return e.err }

// playRecording serves a call's recording to a signed-in agent.
func (c *Console) playRecording(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	who := session(r).User.Name
	cr, err := c.st.Call(ctx, id)
	if errors.Is(err, tickets.ErrNotFound) {
		c.refuse(w, r, http.StatusNotFound, "error.no_call", id)
		return
	}
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	// A call of another provider is "not found".
	if ok, err := c.callVisible(ctx, session(r).User, id); err != nil {
		c.serverError(w, r, err)
		return
	} else if !ok {
		c.audit(ctx, tickets.AuditEntry{User: who, Action: "recording_play", Target: id, Detail: "refused: another provider's call", Address: clientAddr(r)})
		c.refuse(w, r, http.StatusNotFound, "error.no_call", id)
		return
	}
	if cr.Recording == "" {
		c.refuse(w, r, http.StatusNotFound, "error.no_recording", id)
		return
	}
	audit := func(ok bool, detail string) {
		c.audit(ctx, tickets.AuditEntry{User: who, Action: "recording_play", Target: id, Detail: detail, Address: clientAddr(r), OK: ok})
	}
	engine := cr.Engine
	if engine == "" || engine == c.cfg.Engine {
		f, err := c.openLocal(cr.Recording)
		if err != nil {
			audit(false, "engine "+c.cfg.Engine+": "+err.Error())
			c.refuse(w, r, http.StatusNotFound, "error.recording_gone", id)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			c.serverError(w, r, err)
			return
		}
		audit(true, "local")
		w.Header().Set("Content-Type", "audio/wav")
		http.ServeContent(w, r, filepath.Base(cr.Recording), st.ModTime(), f)
		return
	}
	res, err := c.fetchPeer(ctx, engine, id, r.Header.Get("Range"))
	var down *errEngineDown
	switch {
	case errors.As(err, &down):
		audit(false, "engine "+engine+" down")
		c.log.Warn("recording on another engine not reachable", "call_id", id, "engine", engine, "err", err)
		c.refuse(w, r, http.StatusBadGateway, "error.engine_down", engine)
		return
	case errors.Is(err, errNoPeer):
		audit(false, "engine "+engine+": "+err.Error())
		c.refuse(w, r, http.StatusServiceUnavailable, "error.no_peer", engine)
		return
	case err != nil:
		audit(false, "engine "+engine+": "+err.Error())
		c.serverError(w, r, err)
		return
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		w.Header().Set("Content-Range", res.Header.Get("Content-Range"))
		c.refuse(w, r, res.StatusCode, "error.range")
		return
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusPartialContent {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		audit(false, fmt.Sprintf("engine %s answered %d", engine, res.StatusCode))
		code := http.StatusBadGateway
		if res.StatusCode == http.StatusNotFound {
			code = http.StatusNotFound
		}
		c.log.Warn("recording refused by another engine", "call_id", id, "engine", engine, "status", res.StatusCode, "answer", strings.TrimSpace(string(msg)))
		c.refuse(w, r, code, "error.peer_answered", engine, id, res.StatusCode)
		return
	}
	audit(true, "from engine "+engine)
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified"} {
		if v := res.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	if _, err := io.Copy(w, res.Body); err != nil && ctx.Err() == nil {
		c.log.Warn("recording from another engine cut", "call_id", id, "engine", engine, "err", err)
	}
}

// openLocal opens a recording of this engine, refusing a path outside
// its recordings folder (when one is configured).
func (c *Console) openLocal(path string) (*os.File, error) {
	if dir := c.cfg.RecordingsDir; dir != "" {
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			return nil, fmt.Errorf("%s is outside the recordings folder", path)
		}
	}
	return os.Open(path)
}

// fetchPeer asks engine for call id's recording.
func (c *Console) fetchPeer(ctx context.Context, engine, id, rng string) (*http.Response, error) {
	base, ok := c.cfg.Peers[engine]
	if !ok || len(c.cfg.PeerSecret) == 0 {
		return nil, fmt.Errorf("%w: the recording is kept on engine %q and this engine (%q) has no address for it: set recordings.peers and recordings.secret (docs/scale-out.md)", errNoPeer, engine, c.cfg.Engine)
	}
	path := "/internal/recordings/" + id
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	exp := time.Now().Add(peerSkew).Unix()
	req.Header.Set(peerEngineHeader, c.cfg.Engine)
	req.Header.Set(peerExpiresHeader, strconv.FormatInt(exp, 10))
	req.Header.Set(peerSigHeader, peerSignature(c.cfg.PeerSecret, http.MethodGet, path, c.cfg.Engine, exp))
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	res, err := c.peerClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &errEngineDown{engine: engine, err: err}
	}
	return res, nil
}

// peerRecording serves this engine's recording to another engine's
// console, after checking the request's signature.
func (c *Console) peerRecording(w http.ResponseWriter, r *http.Request) {
	if len(c.cfg.PeerSecret) == 0 {
		http.NotFound(w, r)
		return
	}
	from := r.Header.Get(peerEngineHeader)
	exp, err := strconv.ParseInt(r.Header.Get(peerExpiresHeader), 10, 64)
	want := peerSignature(c.cfg.PeerSecret, r.Method, r.URL.Path, from, exp)
	if err != nil || time.Now().Unix() > exp || exp > time.Now().Add(2*peerSkew).Unix() ||
		!hmac.Equal([]byte(want), []byte(r.Header.Get(peerSigHeader))) {
		c.log.Warn("engine-to-engine request refused", "path", r.URL.Path, "from", from, "address", clientAddr(r))
		http.Error(w, "signature missing, wrong or expired", http.StatusForbidden)
		return
	}
	id := r.PathValue("id")
	cr, err := c.st.Call(r.Context(), id)
	if errors.Is(err, tickets.ErrNotFound) || (err == nil && cr.Recording == "") {
		http.Error(w, "no recording of call "+id, http.StatusNotFound)
		return
	}
	if err != nil {
		c.log.Error("peer recording", "call_id", id, "err", err)
		http.Error(w, "the engine cannot reach its database", http.StatusServiceUnavailable)
		return
	}
	if cr.Engine != c.cfg.Engine {
		http.Error(w, fmt.Sprintf("call %s was recorded by engine %q, not %q", id, cr.Engine, c.cfg.Engine), http.StatusNotFound)
		return
	}
	f, err := c.openLocal(cr.Recording)
	if err != nil {
		http.Error(w, "the recording of call "+id+" is not on engine "+c.cfg.Engine+"'s disk", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "the recording cannot be read", http.StatusInternalServerError)
		return
	}
	c.log.Info("recording served to another engine", "call_id", id, "to", from)
	w.Header().Set("Content-Type", "audio/wav")
	http.ServeContent(w, r, filepath.Base(cr.Recording), st.ModTime(), f)
}
