package ari

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The event samples in testdata/events (Asterisk's documented shape)
// decode, and their protocol-log line keeps the ids and facts but never
// the caller's number or a DTMF digit.
func TestEventSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil || len(files) < 7 {
		t.Fatalf("samples: %v %d", err, len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := decodeEvent(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if ev.Channel == nil || ev.Channel.ID == "" || ev.Application != "ivr" {
			t.Errorf("%s: %+v", f, ev)
			continue
		}
		line := ev.logLine()
		if strings.Contains(line, "+40721000999") || strings.Contains(line, `"digit"`) {
			t.Errorf("%s: personal data in the log line %s", f, line)
		}
		if !strings.Contains(line, `"channel":"`+ev.Channel.ID+`"`) {
			t.Errorf("%s: no channel id in %s", f, line)
		}
		switch ev.Type {
		case "ChannelDtmfReceived":
			if ev.Digit != "5" || ev.DurationMs != 120 {
				t.Errorf("dtmf: %+v", ev)
			}
		case "ChannelDestroyed":
			if ev.Cause != 16 || ev.CauseTxt != "Normal Clearing" {
				t.Errorf("destroyed: %+v", ev)
			}
		case "StasisStart":
			if ev.Channel.Name == "" {
				t.Error("no channel name")
			}
			if strings.HasPrefix(ev.Channel.Name, "UnicastRTP/") {
				if a, ok := unicastAddr(ev.Channel.Channelvars); !ok || a.Port != 17234 {
					t.Errorf("ExternalMedia address: %v %v", a, ok)
				}
			} else if ev.Channel.Caller.Number != "+40721000999" || ev.Channel.Dialplan.Exten != "1919" {
				t.Errorf("start: %+v", ev.Channel)
			}
		}
	}
}

// FuzzDecodeEvent: no input makes decoding or logging panic.
func FuzzDecodeEvent(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"StasisStart","channel":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := decodeEvent(data)
		if err == nil {
			_ = ev.logLine()
		}
	})
}

// BenchmarkDecodeEvent: the cost of one DTMF event on the WebSocket reader.
func BenchmarkDecodeEvent(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "events", "ChannelDtmfReceived.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ev, err := decodeEvent(data)
		if err != nil {
			b.Fatal(err)
		}
		_ = ev.logLine()
	}
}
