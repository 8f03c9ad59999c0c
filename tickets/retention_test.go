package tickets_test

import (
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

func TestRetentionConfig(t *testing.T) {
	s := func(v string) *string { return &v }
	pol, err := tickets.RetentionConfig{ArchiveAfter: "30d", Recordings: "2160h", Transcripts: "0",
		Providers: map[string]tickets.RetentionOverride{"pass": {Recordings: s("7d")}}}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	want := tickets.RetentionPeriods{ArchiveAfter: 30 * day, Recordings: 90 * day, Transcripts: 0, Personal: tickets.DefaultPersonal}
	if pol.Default != want {
		t.Errorf("default %+v, want %+v", pol.Default, want)
	}
	want.Recordings = 7 * day
	if got := pol.For("pass"); got != want {
		t.Errorf("pass %+v, want %+v", got, want)
	}
	if got := pol.For("other"); got != pol.Default {
		t.Errorf("a provider without an override: %+v", got)
	}
	for _, c := range []struct {
		cfg tickets.RetentionConfig
		key string
	}{
		{tickets.RetentionConfig{Recordings: "ten days"}, "retention.recordings"},
		{tickets.RetentionConfig{Personal: "-3d"}, "retention.personal"},
		{tickets.RetentionConfig{At: "25:00"}, "retention.at"},
		{tickets.RetentionConfig{Providers: map[string]tickets.RetentionOverride{"pass": {Transcripts: s("1y")}}}, "retention.providers.pass.transcripts"},
		{tickets.RetentionConfig{Providers: map[string]tickets.RetentionOverride{"Bad Id": {}}}, "retention.providers.Bad Id"},
	} {
		if _, err := c.cfg.Policy(); err == nil || !strings.HasPrefix(err.Error(), c.key+":") {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.key)
		}
	}
}

func TestBlankPersonal(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{`{"channel":"phone","caller":"+37360000001","description":"a \u003cb\u003e","personal":{"cnp":"1"},"deadline_ns":1}`,
			`{"channel":"phone","caller":"","description":"a \u003cb\u003e","personal":{},"deadline_ns":1}`},
		{`{"text":"note"}`, `{"text":"note"}`},
		{`{"caller":"","personal":{}}`, `{"caller":"","personal":{}}`},
	} {
		got, changed, err := tickets.BlankPersonal(c.in)
		if err != nil || got != c.out || changed != (c.in != c.out) {
			t.Errorf("BlankPersonal(%s) = %s, %v, %v; want %s", c.in, got, changed, err, c.out)
		}
	}
	if _, _, err := tickets.BlankPersonal(`[1]`); err == nil {
		t.Error("an array is accepted")
	}
}
