package ari

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/govline/ivr/ivr"
)

// conn keeps the event WebSocket to one Asterisk server up. Connecting it
// registers the Stasis application (Asterisk registers an application while
// a WebSocket subscribed to it is open). It is owned by Server.Serve: run
// returns when ctx ends, with every goroutine it started joined.
type conn struct {
	s     *Server
	cfg   ServerConfig
	label string // host:port, for logs and metrics
	cl    *client
}

// run connects, reads events until the connection drops, and reconnects
// with exponential backoff and full jitter (a delay drawn uniformly from
// [min/2, d], d doubling from ReconnectMin up to ReconnectMax), so a
// restarted Asterisk is not hit by every engine at the same instant.
func (cn *conn) run(ctx context.Context) {
	log := cn.s.log.With("server", cn.label)
	delay := cn.s.cfg.ReconnectMin
	attempt := 0
	for ctx.Err() == nil {
		up, err := cn.session(ctx, attempt > 0)
		cn.s.metrics.setConnected(cn.label, false)
		if ctx.Err() != nil {
			return
		}
		if up {
			delay = cn.s.cfg.ReconnectMin // it worked for a while: start over
			attempt = 0
		}
		attempt++
		wait := jitter(delay)
		cn.s.metrics.Reconnects.Add(1)
		log.Warn("ARI WebSocket down; reconnecting", "err", err, "in", wait.Round(time.Millisecond), "attempt", attempt)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, cn.s.cfg.ReconnectMax)
	}
}

func jitter(d time.Duration) time.Duration {
	lo := d / 2
	return lo + time.Duration(rand.Int64N(int64(d-lo)+1))
}

func (cn *conn) wsURL() string {
	u, _ := url.Parse(cn.cfg.URL)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path += "/events"
	u.RawQuery = url.Values{"app": {cn.cfg.App}, "subscribeAll": {"false"}}.Encode()
	return u.String()
}

// session runs one WebSocket connection; up says whether it got connected.
func (cn *conn) session(ctx context.Context, again bool) (up bool, err error) {
	log := cn.s.log.With("server", cn.label)
	dctx, cancel := context.WithTimeout(ctx, cn.s.cfg.RequestTimeout)
	hdr := http.Header{}
	hdr.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cn.cfg.User+":"+cn.cfg.Password)))
	ws, res, err := websocket.Dial(dctx, cn.wsURL(), &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: cn.cl.http})
	cancel()
	if err != nil {
		if res != nil {
			if res.StatusCode == http.StatusUnauthorized {
				return false, errors.New("401 Unauthorized: check the ARI user and password (ari.conf)")
			}
			return false, fmt.Errorf("WebSocket refused: %s", res.Status)
		}
		return false, errors.New(transportError(err))
	}
	ws.SetReadLimit(maxEventSize)
	defer ws.CloseNow()
	cn.s.metrics.setConnected(cn.label, true)
	cn.s.readyOnce.Do(func() { close(cn.s.ready) })
	log.Info("ARI WebSocket connected; application registered", "app", cn.cfg.App, "reconnect", again)

	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	// A peer that vanished without closing TCP is found by the ping.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cn.s.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(sctx, cn.s.cfg.RequestTimeout)
			err := ws.Ping(pctx)
			cancel()
			if err != nil && sctx.Err() == nil {
				log.Warn("ARI WebSocket ping failed; closing it", "err", err)
				ws.CloseNow()
				return
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if again {
			// Events were lost while the connection was down: ask
			// Asterisk which of our channels still exist.
			cn.resync(sctx)
		}
		cn.reapLoop(sctx)
	}()
	for {
		typ, data, err := ws.Read(sctx)
		if err != nil {
			if ctx.Err() != nil {
				ws.Close(websocket.StatusNormalClosure, "engine stopping")
				return true, nil
			}
			return true, errors.New(strings.TrimPrefix(err.Error(), "failed to get reader: "))
		}
		if typ != websocket.MessageText {
			cn.s.metrics.EventsMalformed.Add(1)
			log.Warn("binary WebSocket message ignored", "bytes", len(data))
			continue
		}
		ev, err := decodeEvent(data)
		if err != nil {
			cn.s.metrics.EventsMalformed.Add(1)
			log.Warn("ARI event ignored", "err", err, "bytes", len(data))
			continue
		}
		cn.s.dispatch(cn, ev)
	}
}

// resync ends the calls of this server whose caller or ExternalMedia
// channel no longer exists (Asterisk restarted, or hung up while the
// WebSocket was down).
func (cn *conn) resync(ctx context.Context) {
	cn.s.mu.Lock()
	var mine []*call
	for k, c := range cn.s.calls {
		if k.cn == cn && k.id == c.id {
			mine = append(mine, c)
		}
	}
	cn.s.mu.Unlock()
	for _, c := range mine {
		if ctx.Err() != nil {
			return
		}
		ids := []string{c.id}
		if m := c.media(); m != "" {
			ids = append(ids, m)
		}
		for _, id := range ids {
			err := cn.cl.do(ctx, c.id, http.MethodGet, "/channels/"+url.PathEscape(id), nil, nil, nil)
			if isNotFound(err) {
				if id == c.id {
					c.gone.Store(true)
				}
				c.tr.Event("ari.resync", fmt.Sprintf(`{"channel":%q,"exists":false}`, id))
				c.end(ivr.EndError, fmt.Errorf("channel %s gone while the ARI connection was down", id))
				break
			}
		}
	}
}

func (cn *conn) mediaPrefix() string  { return mediaPrefix + cn.cfg.App + "-" }
func (cn *conn) bridgePrefix() string { return bridgePrefix + cn.cfg.App + "-" }

// reapLoop removes orphans now and every ReapInterval until ctx ends.
func (cn *conn) reapLoop(ctx context.Context) {
	t := time.NewTicker(cn.s.cfg.ReapInterval)
	defer t.Stop()
	for {
		cn.reap(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reap removes the ExternalMedia channels and bridges of this application
// that no call owns. A call makes its objects' ids known before it asks
// Asterisk to create them and forgets them only after deleting them, so
// an object with our prefix and no call is an orphan.
func (cn *conn) reap(ctx context.Context) {
	var chans []Channel
	if err := cn.cl.do(ctx, "", http.MethodGet, "/channels", nil, nil, &chans); err == nil {
		for _, ch := range chans {
			if strings.HasPrefix(ch.ID, cn.mediaPrefix()) && cn.s.lookup(cn, ch.ID) == nil {
				cn.remove(ch.ID, "/channels/")
			}
		}
	}
	var bridges []Bridge
	if err := cn.cl.do(ctx, "", http.MethodGet, "/bridges", nil, nil, &bridges); err == nil {
		for _, b := range bridges {
			if strings.HasPrefix(b.ID, cn.bridgePrefix()) && cn.s.lookup(cn, b.ID) == nil {
				cn.remove(b.ID, "/bridges/")
			}
		}
	}
}

// remove deletes an orphan channel or bridge.
func (cn *conn) remove(id, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), cn.s.cfg.RequestTimeout)
	defer cancel()
	err := cn.cl.do(ctx, "", http.MethodDelete, kind+url.PathEscape(id), nil, nil, nil)
	if err != nil && !isNotFound(err) {
		cn.s.log.Warn("orphan not removed", "server", cn.label, "id", id, "err", err)
		return
	}
	cn.s.metrics.Reaped.Add(1)
	cn.s.log.Warn("removed an object no call owns", "server", cn.label, "id", id)
}
