package tickets

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RetentionConfig is the [retention] table of ivrd.toml, which ivrctl
// retention run reads too (docs/retention.md). Periods are written "90d"
// (days), or as Go durations ("2160h"); "0" keeps the thing for ever
// (archive_after "0": the closed tickets stay among the working ones).
type RetentionConfig struct {
	// Enabled runs the job in ivrd every day at At.
	Enabled bool `toml:"enabled"`
	// At is the time of day of the daily run, "HH:MM" in the engine's
	// local time zone.
	At           string `toml:"at"`
	ArchiveAfter string `toml:"archive_after"`
	Recordings   string `toml:"recordings"`
	Transcripts  string `toml:"transcripts"`
	Personal     string `toml:"personal"`
	// Providers overrides periods per provider id; a period left out is
	// the line's.
	Providers map[string]RetentionOverride `toml:"providers"`
}

// RetentionOverride is one provider's [retention.providers.ID] table.
type RetentionOverride struct {
	ArchiveAfter *string `toml:"archive_after"`
	Recordings   *string `toml:"recordings"`
	Transcripts  *string `toml:"transcripts"`
	Personal     *string `toml:"personal"`
}

// ParseRetentionPeriod reads a period: "90d", "36h", "0".
func ParseRetentionPeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*366 {
			return 0, fmt.Errorf("%q: want a number of days (90d), a duration (2160h) or 0", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a number of days (90d), a duration (2160h) or 0", s)
	}
	return d, nil
}

// ParseAt reads the time of day of the daily run ("03:30").
func ParseAt(s string) (hour, minute int, err error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: want HH:MM", s)
	}
	return t.Hour(), t.Minute(), nil
}

// Policy checks the table and returns its policy; an error names the key
// ("retention.providers.pass.recordings: ...").
func (c RetentionConfig) Policy() (RetentionPolicy, error) {
	var errs []error
	period := func(key, v string, def time.Duration) time.Duration {
		if v == "" {
			return def
		}
		d, err := ParseRetentionPeriod(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return d
	}
	pol := RetentionPolicy{Default: RetentionPeriods{
		ArchiveAfter: period("retention.archive_after", c.ArchiveAfter, DefaultArchiveAfter),
		Recordings:   period("retention.recordings", c.Recordings, DefaultRecordings),
		Transcripts:  period("retention.transcripts", c.Transcripts, DefaultTranscripts),
		Personal:     period("retention.personal", c.Personal, DefaultPersonal),
	}}
	if c.At != "" {
		if _, _, err := ParseAt(c.At); err != nil {
			errs = append(errs, fmt.Errorf("retention.at: %w", err))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.Providers)) {
		o := c.Providers[id]
		key := "retention.providers." + id
		if err := checkProviderID(id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		over := func(k string, v *string, def time.Duration) time.Duration {
			if v == nil {
				return def
			}
			return period(key+"."+k, *v, def)
		}
		if pol.Providers == nil {
			pol.Providers = map[string]RetentionPeriods{}
		}
		pol.Providers[id] = RetentionPeriods{
			ArchiveAfter: over("archive_after", o.ArchiveAfter, pol.Default.ArchiveAfter),
			Recordings:   over("recordings", o.Recordings, pol.Default.Recordings),
			Transcripts:  over("transcripts", o.Transcripts, pol.Default.Transcripts),
			Personal:     over("personal", o.Personal, pol.Default.Personal),
		}
	}
	if len(errs) > 0 {
		return RetentionPolicy{}, errs[0] // the first bad key
	}
	return pol, nil
}
