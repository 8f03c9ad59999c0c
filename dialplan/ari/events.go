package ari

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The ARI data models this adapter reads, as Asterisk documents them
// (rest-api/api-docs/events.json and channels.json). Fields the adapter
// does not use are left out; unknown fields are ignored, so a newer
// Asterisk that adds fields changes nothing.

// Channel is ARI's Channel model.
type Channel struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	State       string            `json:"state"`
	ProtocolID  string            `json:"protocol_id,omitempty"`
	Caller      CallerID          `json:"caller"`
	Connected   CallerID          `json:"connected"`
	Dialplan    DialplanCEP       `json:"dialplan"`
	Language    string            `json:"language,omitempty"`
	Channelvars map[string]string `json:"channelvars,omitempty"`
}

// CallerID is ARI's CallerID model. Number is personal data.
type CallerID struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

// DialplanCEP is where a channel is in the dialplan.
type DialplanCEP struct {
	Context  string `json:"context"`
	Exten    string `json:"exten"`
	Priority int64  `json:"priority"`
	AppName  string `json:"app_name,omitempty"`
	AppData  string `json:"app_data,omitempty"`
}

// Bridge is ARI's Bridge model.
type Bridge struct {
	ID         string   `json:"id"`
	Technology string   `json:"technology"`
	BridgeType string   `json:"bridge_type"`
	Channels   []string `json:"channels"`
}

// Event is any ARI event: the common Message and Event fields plus the
// fields of the events the adapter acts on. One struct instead of one type
// per event keeps decoding total: an event of a type the adapter does not
// know still decodes (and is logged and ignored).
type Event struct {
	Type        string   `json:"type"`
	Application string   `json:"application"`
	Timestamp   string   `json:"timestamp"`
	AsteriskID  string   `json:"asterisk_id,omitempty"`
	Channel     *Channel `json:"channel,omitempty"`
	Bridge      *Bridge  `json:"bridge,omitempty"`
	Args        []string `json:"args,omitempty"`        // StasisStart
	Digit       string   `json:"digit,omitempty"`       // ChannelDtmfReceived
	DurationMs  int      `json:"duration_ms,omitempty"` // ChannelDtmfReceived
	Cause       int      `json:"cause,omitempty"`       // ChannelHangupRequest, ChannelDestroyed
	CauseTxt    string   `json:"cause_txt,omitempty"`   // ChannelDestroyed
	Soft        bool     `json:"soft,omitempty"`        // ChannelHangupRequest
	Variable    string   `json:"variable,omitempty"`    // ChannelVarset
	Value       string   `json:"value,omitempty"`       // ChannelVarset
}

// errMalformed wraps every reason an event is refused.
var errMalformed = errors.New("malformed ARI event")

// maxEventSize bounds one WebSocket message; Asterisk's events are a few
// kilobytes.
const maxEventSize = 1 << 20

// decodeEvent parses one WebSocket message. It never panics: bad JSON, a
// missing type or a channel event without a channel id is an error
// wrapping errMalformed.
func decodeEvent(data []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if e.Type == "" {
		return nil, fmt.Errorf("%w: no type", errMalformed)
	}
	switch e.Type {
	case "StasisStart", "StasisEnd", "ChannelDtmfReceived", "ChannelHangupRequest", "ChannelDestroyed", "ChannelStateChange":
		if e.Channel == nil || e.Channel.ID == "" {
			return nil, fmt.Errorf("%w: %s without a channel id", errMalformed, e.Type)
		}
	}
	return &e, nil
}

// logged is the event as it goes into a call's protocol log: the type,
// the channel and bridge ids and the facts an administrator reads; never
// the caller's number or name, and never a DTMF digit (keys may be a PIN
// or a national ID number; the call record keeps them in its DTMF field).
type logged struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp,omitempty"`
	Channel   string `json:"channel,omitempty"`
	Name      string `json:"channel_name,omitempty"`
	State     string `json:"state,omitempty"`
	Bridge    string `json:"bridge,omitempty"`
	Cause     int    `json:"cause,omitempty"`
	CauseTxt  string `json:"cause_txt,omitempty"`
	Duration  int    `json:"duration_ms,omitempty"`
	Variable  string `json:"variable,omitempty"`
}

func (e *Event) logLine() string {
	l := logged{Type: e.Type, Timestamp: e.Timestamp, Cause: e.Cause, CauseTxt: e.CauseTxt, Duration: e.DurationMs}
	if e.Channel != nil {
		l.Channel, l.Name, l.State = e.Channel.ID, e.Channel.Name, e.Channel.State
	}
	if e.Bridge != nil {
		l.Bridge = e.Bridge.ID
	}
	if e.Type == "ChannelVarset" {
		l.Variable = e.Variable // the value may be anything: left out
	}
	b, _ := json.Marshal(l)
	return string(b)
}
