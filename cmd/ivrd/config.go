package main

import (
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/dialplan/ari"
	"github.com/govline/ivr/dialplan/esl"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// defaultConfig is the embedded default configuration. The file
// cmd/ivrd/ivrd.toml is also the documented example: copy it, edit it and
// pass it with -config.
//
//go:embed ivrd.toml
var defaultConfig string

// Config is ivrd's configuration: one TOML file, then environment
// overrides, then validation.
type Config struct {
	Engine    EngineConfig            `toml:"engine"`
	Store     StoreConfig             `toml:"store"`
	Flows     FlowsConfig             `toml:"flows"`
	Calendar  CalendarConfig          `toml:"calendar"`
	Surveys   SurveysConfig           `toml:"surveys"`
	Deadlines tickets.DeadlineConfig  `toml:"deadlines"`
	ARI       ARIConfig               `toml:"ari"`
	ESL       ESLConfig               `toml:"esl"`
	SIP       SIPConfig               `toml:"sip"`
	Console   ConsoleConfig           `toml:"console"`
	Webhook   WebhookConfig           `toml:"webhook"`
	Email     EmailConfig             `toml:"email"`
	Chat      ChatConfig              `toml:"chat"`
	Recording RecordingsConfig        `toml:"recordings"`
	Retention tickets.RetentionConfig `toml:"retention"`
	Speech    SpeechConfig            `toml:"speech"`
	HTTP      HTTPConfig              `toml:"http"`
	Log       LogConfig               `toml:"log"`
}

// EngineConfig is the [engine] table.
type EngineConfig struct {
	Telephony         string   `toml:"telephony"`
	Name              string   `toml:"name"`
	DataDir           string   `toml:"data_dir"`
	FlowsDir          string   `toml:"flows_dir"`
	Language          string   `toml:"language"`
	RecordCalls       bool     `toml:"record_calls"`
	ShutdownGrace     Duration `toml:"shutdown_grace"`
	FirstDigitTimeout Duration `toml:"first_digit_timeout"`
	MenuRetries       int      `toml:"menu_retries"`
}

// StoreConfig is the [store] table: where the line's data lives.
type StoreConfig struct {
	// URL is postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=disable
	// (engines sharing one PostgreSQL), or sqlite:PATH; empty means the
	// embedded SQLite file DATA_DIR/ivr.db.
	URL string `toml:"url"`
}

// storeURL is the store the engine opens: store.url, or the SQLite file in
// the data directory.
func (c Config) storeURL() string {
	if c.Store.URL != "" {
		return c.Store.URL
	}
	return store.SQLiteURL(tickets.DBPath(c.Engine.DataDir))
}

// engineName is the name this engine stamps on its calls: engine.name, or
// on a PostgreSQL store (engines sharing it) the host name.
func (c Config) engineName(b store.Backend) string {
	if c.Engine.Name != "" || b != store.Postgres {
		return c.Engine.Name
	}
	h, _ := os.Hostname()
	return h
}

// FlowsConfig is the [flows] table.
type FlowsConfig struct {
	Default   string            `toml:"default"`
	Reload    bool              `toml:"reload"`
	CPULimit  Duration          `toml:"cpu_limit"`
	CallLimit Duration          `toml:"call_limit"`
	Routes    map[string]string `toml:"routes"`
}

// CalendarConfig is the [calendar] table: the operators' working hours,
// as tickets.NewCalendar reads them, and how flows say them.
type CalendarConfig struct {
	tickets.CalendarConfig
	TextRO string `toml:"text_ro"`
	TextEN string `toml:"text_en"`
}

// SIPQueueConfig is the [sip.queue] table: the embedded line's agent queue.
type SIPQueueConfig struct {
	Enabled       bool     `toml:"enabled"`
	Realm         string   `toml:"realm"`
	MinExpires    Duration `toml:"min_expires"`
	MaxExpires    Duration `toml:"max_expires"`
	RingTimeout   Duration `toml:"ring_timeout"`
	RetryDelay    Duration `toml:"retry_delay"`
	AnnounceEvery Duration `toml:"announce_every"`
	HandleTime    Duration `toml:"handle_time"`
	// Failed REGISTER digests (docs/operations.md, "Agent registration").
	MaxFailures        int      `toml:"max_failures"`
	AddressMaxFailures int      `toml:"address_max_failures"`
	Backoff            Duration `toml:"backoff"`
	Lockout            Duration `toml:"lockout"`
	Queues             map[string]struct {
		Strategy string   `toml:"strategy"`
		MaxWait  Duration `toml:"max_wait"`
		Service  string   `toml:"service"`
	} `toml:"queues"`
}

// queueConfig maps [sip.queue] onto the queues' configuration.
func (c Config) queueConfig() queue.Config {
	q := queue.Config{Queues: map[string]queue.QueueConfig{},
		RingTimeout: c.SIP.Queue.RingTimeout.Duration, RetryDelay: c.SIP.Queue.RetryDelay.Duration,
		AnnounceEvery: c.SIP.Queue.AnnounceEvery.Duration, HandleTime: c.SIP.Queue.HandleTime.Duration}
	for name, qc := range c.SIP.Queue.Queues {
		q.Queues[name] = queue.QueueConfig{Strategy: queue.Strategy(qc.Strategy), MaxWait: qc.MaxWait.Duration, Service: tickets.Service(qc.Service)}
	}
	return q
}

// SIPConfig is the [sip] table.
type SIPConfig struct {
	Listen      string   `toml:"listen"`
	MediaIP     string   `toml:"media_ip"`
	RTPPortMin  int      `toml:"rtp_port_min"`
	RTPPortMax  int      `toml:"rtp_port_max"`
	RTPTimeout  Duration `toml:"rtp_timeout"`
	AnswerDelay Duration `toml:"answer_delay"`
	JitterDepth int      `toml:"jitter_depth"`
	Codecs      []string `toml:"codecs"`
	// Limits (docs/operations.md, "Limits").
	MaxCalls            int            `toml:"max_calls"`
	MaxCallsPerSource   int            `toml:"max_calls_per_source"`
	MaxPending          int            `toml:"max_pending"`
	MaxPendingPerSource int            `toml:"max_pending_per_source"`
	AckTimeout          Duration       `toml:"ack_timeout"`
	Queue               SIPQueueConfig `toml:"queue"`
	// Trunk is where outbound calls go, sip:USER:PASSWORD@HOST:PORT with
	// ;transport=tcp or tls, or sips:USER:PASSWORD@HOST:PORT (empty: the
	// line places no calls); CallerID their From user.
	Trunk    string `toml:"trunk"`
	CallerID string `toml:"caller_id"`
	// A TLS trunk's checks: CAs trusted besides the system roots (PEM),
	// the name its certificate must hold (default its IP address), and
	// the line's client certificate and key (PEM) if the trunk asks for
	// one.
	TrunkCA         string            `toml:"trunk_ca"`
	TrunkServerName string            `toml:"trunk_server_name"`
	TrunkCert       string            `toml:"trunk_cert"`
	TrunkKey        string            `toml:"trunk_key"`
	Outbound        SIPOutboundConfig `toml:"outbound"`
}

// SurveysConfig is the [surveys] table: satisfaction survey calls after a
// phone ticket is resolved, through the telephony's trunk: sip.trunk,
// ari.outbound_endpoint or esl.outbound.gateway (docs/queue.md, "Survey
// calls").
type SurveysConfig struct {
	Enabled bool     `toml:"enabled"`
	Period  Duration `toml:"period"` // a citizen is called at most once in this period
	Every   Duration `toml:"every"`  // how often resolved tickets are looked for
}

// SIPOutboundConfig is the [sip.outbound] table: the limits of outbound
// calls through sip.trunk (docs/operations.md, "Outbound calls").
type SIPOutboundConfig struct {
	MaxConcurrent int      `toml:"max_concurrent"`
	PerSecond     float64  `toml:"per_second"`
	RingTimeout   Duration `toml:"ring_timeout"`
	Retries       int      `toml:"retries"`
	Backoff       Duration `toml:"backoff"`
	MaxBackoff    Duration `toml:"max_backoff"`
	// WorkingHours keeps outbound calls within the [calendar]'s hours.
	WorkingHours bool `toml:"working_hours"`
	MachineConfig
}

// MachineConfig is answering machine detection's keys, the same five in
// each table that says how a telephony places the engine's own calls:
// [sip.outbound], [ari] and [esl.outbound] (docs/operations.md,
// "Answering machines").
type MachineConfig struct {
	// MachineDetection listens to an answered call before the line
	// speaks and hangs up on an answering machine (result "machine").
	MachineDetection bool     `toml:"machine_detection"`
	MachineSpeech    Duration `toml:"machine_speech"`  // a greeting this long without a pause: a machine
	MachinePause     Duration `toml:"machine_pause"`   // silence after a greeting: a person
	MachineSilence   Duration `toml:"machine_silence"` // silence from the answer: a person
	MachineMax       Duration `toml:"machine_max"`     // the longest the line listens
}

// detection is the settings of package ivr/amd.
func (m MachineConfig) detection() amd.Config {
	return amd.Config{Enabled: m.MachineDetection, Speech: m.MachineSpeech.Duration, Pause: m.MachinePause.Duration,
		Silence: m.MachineSilence.Duration, Max: m.MachineMax.Duration}
}

// bounds are the keys' ranges, the keys named under table ("sip.outbound").
func (m MachineConfig) bounds(table string) []durationBound {
	return []durationBound{
		{table + ".machine_speech", m.MachineSpeech.Duration, time.Second, 10 * time.Second},
		{table + ".machine_pause", m.MachinePause.Duration, 300 * time.Millisecond, 3 * time.Second},
		{table + ".machine_silence", m.MachineSilence.Duration, 500 * time.Millisecond, 10 * time.Second},
		{table + ".machine_max", m.MachineMax.Duration, m.MachineSpeech.Duration, 15 * time.Second},
	}
}

// durationBound is a duration key and its allowed range.
type durationBound struct {
	key      string
	v        time.Duration
	min, max time.Duration
}

// ARIConfig is the [ari] table.
type ARIConfig struct {
	URL              string   `toml:"url"`
	User             string   `toml:"user"`
	Password         string   `toml:"password"`
	App              string   `toml:"app"`
	RTPAddress       string   `toml:"rtp_address"`
	RTPPortMin       int      `toml:"rtp_port_min"`
	RTPPortMax       int      `toml:"rtp_port_max"`
	Format           string   `toml:"format"`
	RTPTimeout       Duration `toml:"rtp_timeout"`
	RequestTimeout   Duration `toml:"request_timeout"`
	HandoffMode      string   `toml:"handoff_mode"`
	HandoffContext   string   `toml:"handoff_context"`
	HandoffExtension string   `toml:"handoff_extension"`
	HandoffPriority  int      `toml:"handoff_priority"`
	HandoffEndpoint  string   `toml:"handoff_endpoint"`
	// OutboundEndpoint is how Asterisk dials the engine's own calls (the
	// survey calls), with {number}: "PJSIP/{number}@trunk".
	OutboundEndpoint    string   `toml:"outbound_endpoint"`
	OutboundCallerID    string   `toml:"outbound_caller_id"`
	OutboundRingTimeout Duration `toml:"outbound_ring_timeout"`
	// Machine detection on those calls: ari.machine_detection and the
	// other machine_* keys.
	MachineConfig
}

// ESLConfig is the [esl] table.
type ESLConfig struct {
	Listen          string `toml:"listen"`
	MediaDial       string `toml:"media_dial"`
	MediaCodec      string `toml:"media_codec"`
	LegHeader       string `toml:"leg_header"`
	InboundAddr     string `toml:"inbound_addr"`
	InboundPassword string `toml:"inbound_password"`
	Handoff         struct {
		Mode    string `toml:"mode"`
		Context string `toml:"context"`
		Domain  string `toml:"domain"`
	} `toml:"handoff"`
	// Outbound is how FreeSWITCH places the engine's own calls (the
	// survey calls): originate over inbound_addr through a gateway.
	Outbound struct {
		Gateway     string   `toml:"gateway"`
		CallerID    string   `toml:"caller_id"`
		RingTimeout Duration `toml:"ring_timeout"`
		Socket      string   `toml:"socket"` // default listen
		MachineConfig
	} `toml:"outbound"`
}

// ConsoleConfig is the [console] table.
type ConsoleConfig struct {
	Listen       string   `toml:"listen"`
	SecureCookie bool     `toml:"secure_cookie"`
	MaxFailures  int      `toml:"max_failures"`
	Lockout      Duration `toml:"lockout"`
	SessionTTL   Duration `toml:"session_ttl"`
	// Sign-in protection before any password is hashed.
	LoginRate       int      `toml:"login_rate"`
	HashConcurrency int      `toml:"hash_concurrency"`
	HashWait        Duration `toml:"hash_wait"`
	// PublicURL is the console's address as the staff's browsers reach
	// it ("https://console.example.gov"); the SAML service provider's
	// entity ID and assertion consumer service are derived from it.
	PublicURL string            `toml:"public_url"`
	SAML      ConsoleSAMLConfig `toml:"saml"`
}

// ConsoleSAMLConfig is the [console.saml] table: staff sign in through the
// government's SAML 2.0 identity provider (MPass; docs/console.md,
// "Signing in with MPass (SAML)"). An empty idp_metadata turns it off.
type ConsoleSAMLConfig struct {
	// IDPMetadata is the identity provider's metadata: a file, or an
	// https:// URL fetched when ivrd starts.
	IDPMetadata string `toml:"idp_metadata"`
	// EntityID overrides the service provider's entity ID
	// (public_url + "/saml/metadata").
	EntityID string `toml:"entity_id"`
	// Cert and Key are the service provider's certificate and RSA key
	// (PEM files).
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// The attributes that carry the user name ("" = the NameID), the role
	// and the provider ("" = every user of the default provider).
	UserAttribute     string `toml:"user_attribute"`
	RoleAttribute     string `toml:"role_attribute"`
	ProviderAttribute string `toml:"provider_attribute"`
	// Roles maps a value of the role attribute to a console role.
	Roles map[string]string `toml:"roles"`
	// BreakGlass, when not empty, limits password sign-in to these
	// accounts; they never sign in through the identity provider.
	BreakGlass []string `toml:"break_glass"`
}

// ChatConfig is the [chat] table: the portal's web chat (channels/chat,
// docs/chat.md). An empty listen turns the channel off.
type ChatConfig struct {
	Listen      string   `toml:"listen"`
	Origins     []string `toml:"origins"` // the portal origins' hosts ("portal.gov.ro", "*.gov.ro")
	Idle        Duration `toml:"idle"`
	MaxMessage  int      `toml:"max_message"`
	PerSecond   int      `toml:"per_second"`
	NewSessions int      `toml:"new_sessions"`
}

// RecordingsConfig is the [recordings] table: how a console plays a
// recording kept on another engine's disk (docs/scale-out.md).
type RecordingsConfig struct {
	// Secret, shared by the engines of one line, signs the requests for
	// another engine's recordings; empty: no engine serves its recordings
	// to another, and none fetches.
	Secret string `toml:"secret"`
	// Peers maps each engine's name to its console's base URL, as the
	// other engines reach it ("http://10.0.0.11:8081"). The same map on
	// every engine: an engine's own entry is not used.
	Peers map[string]string `toml:"peers"`
}

// WebhookConfig is the [webhook] table.
type WebhookConfig struct {
	URL    string `toml:"url"`
	Secret string `toml:"secret"`
}

// EmailConfig is the [email] table: the support mailbox (channels/email,
// docs/email.md). An empty imap_url turns the channel off.
type EmailConfig struct {
	IMAPURL     string   `toml:"imap_url"`
	SMTPURL     string   `toml:"smtp_url"`
	Address     string   `toml:"address"`
	Provider    string   `toml:"provider"`
	MaxSizeMB   int      `toml:"max_size_mb"`
	AcksPerHour int      `toml:"acks_per_hour"`
	Poll        Duration `toml:"poll"`
	// Survey asks for a rating from 1 to 5 in the notice of a resolved
	// ticket (at most once per address in surveys.period).
	Survey bool `toml:"survey"`
	// Mailboxes are more mailboxes read into tickets (a provider's or a
	// service's), answered from the same SMTP account and address.
	Mailboxes []EmailMailbox `toml:"mailboxes"`
	// Rules classify new requests by their text ([[email.rules]]).
	Rules []email.Rule `toml:"rules"`
}

// EmailMailbox is one [[email.mailboxes]] entry.
type EmailMailbox struct {
	IMAPURL  string `toml:"imap_url"`
	Provider string `toml:"provider"`
}

// mailboxes returns the channel's configuration of every mailbox, the
// main one first.
func (e EmailConfig) mailboxes() []email.Config {
	out := []email.Config{e.channel()}
	for _, mb := range e.Mailboxes {
		c := e.channel()
		c.IMAPURL, c.Provider = mb.IMAPURL, mb.Provider
		out = append(out, c)
	}
	return out
}

func (e EmailConfig) channel() email.Config {
	return email.Config{IMAPURL: e.IMAPURL, SMTPURL: e.SMTPURL, Address: e.Address, Provider: e.Provider,
		MaxSize: int64(e.MaxSizeMB) << 20, AcksPerHour: e.AcksPerHour, Poll: e.Poll.Duration, Rules: e.Rules, Survey: e.Survey}
}

// SpeechConfig is the [speech] table: turn-taking by voice (ivr.SpeechConfig).
type SpeechConfig struct {
	Enabled      bool    `toml:"enabled"`
	VADThreshold float64 `toml:"vad_threshold"`
	// VAD is "shared" (one silero model for every call, inferences
	// batched across calls) or "per-call" (a sherpa-onnx detector per
	// speaking call, 12 MB each: kept for side-by-side benchmarks).
	VAD              string   `toml:"vad"`
	MinSpeech        Duration `toml:"min_speech"`
	NoiseMarginDB    float64  `toml:"noise_margin_db"`
	EndSilence       Duration `toml:"end_silence"`
	DigitsEndSilence Duration `toml:"digits_end_silence"`
	// IncompleteSilence ends the turn instead of end_silence while the
	// words so far are not a whole answer of the question.
	IncompleteSilence Duration `toml:"incomplete_silence"`
	MaxUtterance      Duration `toml:"max_utterance"`
	// MaxCalls is how many calls answer by voice at once; later ones
	// answer with keys until one ends. 0: with the embedded recognizer
	// first, speechCallsPerCore per core of the machine, with a network
	// one no limit; -1: no limit.
	MaxCalls int `toml:"max_calls"`
	// Recognizer and Synthesizer choose the first engine of the ladder:
	// "embedded" (pocketsphinx, espeak-ng), "vosk" (recognizer only),
	// "openai" or "sherpa". Any other than embedded falls back to the
	// embedded one when it fails.
	Recognizer    string   `toml:"recognizer"`
	Synthesizer   string   `toml:"synthesizer"`
	FinishTimeout Duration `toml:"finish_timeout"`
	// ModelsDir holds the silero VAD model (silero_vad_v5.onnx); ""
	// looks for var/models in the working folder and its parents, then
	// in the user's cache (a checkout's `make models`).
	ModelsDir string       `toml:"models_dir"`
	Vosk      VoskConfig   `toml:"vosk"`
	OpenAI    OpenAIConfig `toml:"openai"`
	Sherpa    SherpaConfig `toml:"sherpa"`
}

// VoskConfig is [speech.vosk]: a Vosk server's WebSocket.
type VoskConfig struct {
	URL string `toml:"url"`
}

// OpenAIConfig is [speech.openai]: a server of the OpenAI-compatible audio
// API (whisper.cpp's server, faster-whisper servers, LocalAI, OpenAI).
type OpenAIConfig struct {
	URL      string   `toml:"url"`
	APIKey   string   `toml:"api_key"`
	STTModel string   `toml:"stt_model"`
	TTSModel string   `toml:"tts_model"`
	VoiceRO  string   `toml:"voice_ro"`
	VoiceEN  string   `toml:"voice_en"`
	Timeout  Duration `toml:"timeout"`
}

// SherpaConfig is [speech.sherpa]: sherpa-onnx model folders supplied by
// the operator (docs/speech.md).
type SherpaConfig struct {
	ASRDirRO  string `toml:"asr_dir_ro"`
	ASRDirEN  string `toml:"asr_dir_en"`
	ASRKind   string `toml:"asr_kind"`
	TTSDirRO  string `toml:"tts_dir_ro"`
	TTSDirEN  string `toml:"tts_dir_en"`
	Instances int    `toml:"instances"`
	Threads   int    `toml:"threads"`
	Float     bool   `toml:"float"`
}

// HTTPConfig is the [http] table.
type HTTPConfig struct {
	Listen string `toml:"listen"`
	Pprof  bool   `toml:"pprof"`
}

// LogConfig is the [log] table.
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Duration is a time.Duration written as "30s", "1m30s" in the file.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: 500ms, 30s, 2m)", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// firstErr is the first error of a joined one.
func firstErr(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		return j.Unwrap()[0]
	}
	return err
}

// envOverrides maps environment variables to the keys they override.
var envOverrides = []struct {
	env, key string
	set      func(c *Config, v string) error
}{
	{"IVR_TELEPHONY", "engine.telephony", func(c *Config, v string) error { c.Engine.Telephony = v; return nil }},
	{"IVR_ENGINE_NAME", "engine.name", func(c *Config, v string) error { c.Engine.Name = v; return nil }},
	{"IVR_DATA_DIR", "engine.data_dir", func(c *Config, v string) error { c.Engine.DataDir = v; return nil }},
	{"IVR_STORE_URL", "store.url", func(c *Config, v string) error { c.Store.URL = v; return nil }},
	{"IVR_FLOWS_DIR", "engine.flows_dir", func(c *Config, v string) error { c.Engine.FlowsDir = v; return nil }},
	{"IVR_LANGUAGE", "engine.language", func(c *Config, v string) error { c.Engine.Language = v; return nil }},
	{"IVR_RECORD_CALLS", "engine.record_calls", func(c *Config, v string) error { return setBool(&c.Engine.RecordCalls, v) }},
	{"IVR_SHUTDOWN_GRACE", "engine.shutdown_grace", func(c *Config, v string) error { return c.Engine.ShutdownGrace.UnmarshalText([]byte(v)) }},
	{"IVR_FIRST_DIGIT_TIMEOUT", "engine.first_digit_timeout", func(c *Config, v string) error { return c.Engine.FirstDigitTimeout.UnmarshalText([]byte(v)) }},
	{"IVR_SURVEYS", "surveys.enabled", func(c *Config, v string) error { return setBool(&c.Surveys.Enabled, v) }},
	{"IVR_RETENTION", "retention.enabled", func(c *Config, v string) error { return setBool(&c.Retention.Enabled, v) }},
	{"IVR_SURVEYS_PERIOD", "surveys.period", func(c *Config, v string) error { return c.Surveys.Period.UnmarshalText([]byte(v)) }},
	{"IVR_FLOWS_RELOAD", "flows.reload", func(c *Config, v string) error { return setBool(&c.Flows.Reload, v) }},
	{"IVR_SIP_LISTEN", "sip.listen", func(c *Config, v string) error { c.SIP.Listen = v; return nil }},
	{"IVR_MEDIA_IP", "sip.media_ip", func(c *Config, v string) error { c.SIP.MediaIP = v; return nil }},
	{"IVR_RTP_TIMEOUT", "sip.rtp_timeout", func(c *Config, v string) error { return c.SIP.RTPTimeout.UnmarshalText([]byte(v)) }},
	{"IVR_ANSWER_DELAY", "sip.answer_delay", func(c *Config, v string) error { return c.SIP.AnswerDelay.UnmarshalText([]byte(v)) }},
	{"IVR_SIP_MAX_CALLS", "sip.max_calls", func(c *Config, v string) error { return setInt(&c.SIP.MaxCalls, v) }},
	{"IVR_SIP_MAX_CALLS_PER_SOURCE", "sip.max_calls_per_source", func(c *Config, v string) error { return setInt(&c.SIP.MaxCallsPerSource, v) }},
	{"IVR_SIP_MAX_PENDING", "sip.max_pending", func(c *Config, v string) error { return setInt(&c.SIP.MaxPending, v) }},
	{"IVR_SIP_MAX_PENDING_PER_SOURCE", "sip.max_pending_per_source", func(c *Config, v string) error { return setInt(&c.SIP.MaxPendingPerSource, v) }},
	{"IVR_SIP_ACK_TIMEOUT", "sip.ack_timeout", func(c *Config, v string) error { return c.SIP.AckTimeout.UnmarshalText([]byte(v)) }},
	{"IVR_SIP_TRUNK", "sip.trunk", func(c *Config, v string) error { c.SIP.Trunk = v; return nil }},
	{"IVR_SIP_CALLER_ID", "sip.caller_id", func(c *Config, v string) error { c.SIP.CallerID = v; return nil }},
	{"IVR_SIP_TRUNK_CA", "sip.trunk_ca", func(c *Config, v string) error { c.SIP.TrunkCA = v; return nil }},
	{"IVR_SIP_TRUNK_SERVER_NAME", "sip.trunk_server_name", func(c *Config, v string) error { c.SIP.TrunkServerName = v; return nil }},
	{"IVR_SIP_TRUNK_CERT", "sip.trunk_cert", func(c *Config, v string) error { c.SIP.TrunkCert = v; return nil }},
	{"IVR_SIP_TRUNK_KEY", "sip.trunk_key", func(c *Config, v string) error { c.SIP.TrunkKey = v; return nil }},
	{"IVR_SIP_REGISTER_MAX_FAILURES", "sip.queue.max_failures", func(c *Config, v string) error { return setInt(&c.SIP.Queue.MaxFailures, v) }},
	{"IVR_SIP_REGISTER_ADDRESS_MAX_FAILURES", "sip.queue.address_max_failures", func(c *Config, v string) error { return setInt(&c.SIP.Queue.AddressMaxFailures, v) }},
	{"IVR_SIP_REGISTER_BACKOFF", "sip.queue.backoff", func(c *Config, v string) error { return c.SIP.Queue.Backoff.UnmarshalText([]byte(v)) }},
	{"IVR_SIP_REGISTER_LOCKOUT", "sip.queue.lockout", func(c *Config, v string) error { return c.SIP.Queue.Lockout.UnmarshalText([]byte(v)) }},
	{"IVR_ARI_URL", "ari.url", func(c *Config, v string) error { c.ARI.URL = v; return nil }},
	{"IVR_ARI_USER", "ari.user", func(c *Config, v string) error { c.ARI.User = v; return nil }},
	{"IVR_ARI_PASSWORD", "ari.password", func(c *Config, v string) error { c.ARI.Password = v; return nil }},
	{"IVR_ARI_APP", "ari.app", func(c *Config, v string) error { c.ARI.App = v; return nil }},
	{"IVR_ESL_LISTEN", "esl.listen", func(c *Config, v string) error { c.ESL.Listen = v; return nil }},
	{"IVR_ESL_MEDIA_DIAL", "esl.media_dial", func(c *Config, v string) error { c.ESL.MediaDial = v; return nil }},
	{"IVR_ESL_INBOUND_ADDR", "esl.inbound_addr", func(c *Config, v string) error { c.ESL.InboundAddr = v; return nil }},
	{"IVR_ESL_INBOUND_PASSWORD", "esl.inbound_password", func(c *Config, v string) error { c.ESL.InboundPassword = v; return nil }},
	{"IVR_CONSOLE_LISTEN", "console.listen", func(c *Config, v string) error { c.Console.Listen = v; return nil }},
	{"IVR_CONSOLE_PUBLIC_URL", "console.public_url", func(c *Config, v string) error { c.Console.PublicURL = v; return nil }},
	{"IVR_CONSOLE_SAML_IDP_METADATA", "console.saml.idp_metadata", func(c *Config, v string) error { c.Console.SAML.IDPMetadata = v; return nil }},
	{"IVR_CONSOLE_LOGIN_RATE", "console.login_rate", func(c *Config, v string) error { return setInt(&c.Console.LoginRate, v) }},
	{"IVR_CONSOLE_HASH_CONCURRENCY", "console.hash_concurrency", func(c *Config, v string) error { return setInt(&c.Console.HashConcurrency, v) }},
	{"IVR_CONSOLE_HASH_WAIT", "console.hash_wait", func(c *Config, v string) error { return c.Console.HashWait.UnmarshalText([]byte(v)) }},
	{"IVR_CHAT_LISTEN", "chat.listen", func(c *Config, v string) error { c.Chat.Listen = v; return nil }},
	{"IVR_CHAT_ORIGINS", "chat.origins", func(c *Config, v string) error {
		c.Chat.Origins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.Chat.Origins = append(c.Chat.Origins, o)
			}
		}
		return nil
	}},
	{"IVR_WEBHOOK_URL", "webhook.url", func(c *Config, v string) error { c.Webhook.URL = v; return nil }},
	{"IVR_WEBHOOK_SECRET", "webhook.secret", func(c *Config, v string) error { c.Webhook.Secret = v; return nil }},
	{"IVR_EMAIL_IMAP_URL", "email.imap_url", func(c *Config, v string) error { c.Email.IMAPURL = v; return nil }},
	{"IVR_EMAIL_SMTP_URL", "email.smtp_url", func(c *Config, v string) error { c.Email.SMTPURL = v; return nil }},
	{"IVR_EMAIL_ADDRESS", "email.address", func(c *Config, v string) error { c.Email.Address = v; return nil }},
	{"IVR_EMAIL_SURVEY", "email.survey", func(c *Config, v string) error { return setBool(&c.Email.Survey, v) }},
	{"IVR_RECORDINGS_SECRET", "recordings.secret", func(c *Config, v string) error { c.Recording.Secret = v; return nil }},
	{"IVR_RECORDINGS_PEERS", "recordings.peers", func(c *Config, v string) error { return setPeers(&c.Recording.Peers, v) }},
	{"IVR_SPEECH", "speech.enabled", func(c *Config, v string) error { return setBool(&c.Speech.Enabled, v) }},
	{"IVR_SPEECH_VAD", "speech.vad", func(c *Config, v string) error { c.Speech.VAD = v; return nil }},
	{"IVR_SPEECH_MAX_CALLS", "speech.max_calls", func(c *Config, v string) error { return setInt(&c.Speech.MaxCalls, v) }},
	{"IVR_SPEECH_RECOGNIZER", "speech.recognizer", func(c *Config, v string) error { c.Speech.Recognizer = v; return nil }},
	{"IVR_SPEECH_SYNTHESIZER", "speech.synthesizer", func(c *Config, v string) error { c.Speech.Synthesizer = v; return nil }},
	{"IVR_MODELS_DIR", "speech.models_dir", func(c *Config, v string) error { c.Speech.ModelsDir = v; return nil }},
	{"IVR_VOSK_URL", "speech.vosk.url", func(c *Config, v string) error { c.Speech.Vosk.URL = v; return nil }},
	{"IVR_OPENAI_URL", "speech.openai.url", func(c *Config, v string) error { c.Speech.OpenAI.URL = v; return nil }},
	{"IVR_OPENAI_API_KEY", "speech.openai.api_key", func(c *Config, v string) error { c.Speech.OpenAI.APIKey = v; return nil }},
	{"IVR_HTTP_LISTEN", "http.listen", func(c *Config, v string) error { c.HTTP.Listen = v; return nil }},
	{"IVR_HTTP_PPROF", "http.pprof", func(c *Config, v string) error { return setBool(&c.HTTP.Pprof, v) }},
	{"IVR_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"IVR_LOG_FORMAT", "log.format", func(c *Config, v string) error { c.Log.Format = v; return nil }},
}

func setInt(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*dst = n
	return nil
}

// setPeers reads "NAME=URL,NAME=URL" (empty: no peers).
func setPeers(dst *map[string]string, v string) error {
	m := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, u, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("%q is not NAME=URL", kv)
		}
		m[strings.TrimSpace(name)] = strings.TrimSpace(u)
	}
	*dst = m
	return nil
}

func setBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not true or false", v)
	}
	*dst = b
	return nil
}

// LoadConfig reads the embedded defaults, then the file at path (if not
// empty), then the environment (lookup is os.LookupEnv: a variable set to
// the empty string sets the key to empty, IVR_CONSOLE_LISTEN= turns the
// console off; an unset one leaves the key alone), and validates the
// result. Every error names the key (and the file or variable) at fault.
func LoadConfig(path string, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	if _, err := toml.Decode(defaultConfig, &c); err != nil {
		return c, fmt.Errorf("embedded default config: %w", err)
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		md, err := toml.Decode(string(b), &c)
		if err != nil {
			var perr toml.ParseError
			if errors.As(err, &perr) {
				return c, fmt.Errorf("config %s: %s", path, perr.ErrorWithPosition())
			}
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return c, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
		}
	}
	for _, o := range envOverrides {
		if v, ok := lookup(o.env); ok {
			if err := o.set(&c, v); err != nil {
				return c, fmt.Errorf("config: %s (from %s): %w", o.key, o.env, err)
			}
		}
	}
	return c, c.Validate()
}

// Validate checks every key and names the first bad one.
func (c Config) Validate() error {
	bad := func(key string, format string, a ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...))
	}
	switch c.Engine.Telephony {
	case "sip":
	case "ari":
		if err := c.ariConfig().Validate(); err != nil {
			return bad("ari", "%v", err)
		}
	case "esl":
		if c.ESL.Outbound.Gateway != "" && (c.ESL.InboundAddr == "" || c.ESL.InboundPassword == "") {
			return bad("esl.outbound.gateway", "outbound calls need esl.inbound_addr and esl.inbound_password: originate runs over FreeSWITCH's event socket")
		}
		if _, err := c.eslConfig().Validate(); err != nil {
			return bad("esl", "%v", err)
		}
	default:
		return bad("engine.telephony", "%q is not one of sip, ari, esl", c.Engine.Telephony)
	}
	if c.Engine.DataDir == "" {
		return bad("engine.data_dir", "must not be empty")
	}
	if c.Store.URL != "" {
		if _, _, err := store.ParseURL(c.Store.URL); err != nil {
			return bad("store.url", "%v", err)
		}
	}
	if c.Engine.FlowsDir == "" {
		return bad("engine.flows_dir", "must not be empty")
	}
	if st, err := os.Stat(c.Engine.FlowsDir); err != nil || !st.IsDir() {
		return bad("engine.flows_dir", "%q is not a directory", c.Engine.FlowsDir)
	}
	switch c.Engine.Language {
	case "ro", "en":
	default:
		return bad("engine.language", "%q is not one of ro, en", c.Engine.Language)
	}
	if c.Engine.ShutdownGrace.Duration < 0 {
		return bad("engine.shutdown_grace", "must not be negative")
	}
	if c.Engine.FirstDigitTimeout.Duration <= 0 {
		return bad("engine.first_digit_timeout", "must be positive")
	}
	if c.Engine.MenuRetries < 1 || c.Engine.MenuRetries > 10 {
		return bad("engine.menu_retries", "%d is not between 1 and 10", c.Engine.MenuRetries)
	}
	if c.Flows.Default == "" {
		return bad("flows.default", "must name a flow file")
	}
	for _, f := range append([]string{c.Flows.Default}, mapValues(c.Flows.Routes)...) {
		if !strings.HasSuffix(f, ".lua") || strings.Contains(f, "..") || filepath.IsAbs(f) {
			return bad("flows", "%q must be a .lua file inside flows_dir", f)
		}
		if _, err := os.Stat(filepath.Join(c.Engine.FlowsDir, f)); err != nil {
			return bad("flows", "flow %q not found in %s", f, c.Engine.FlowsDir)
		}
	}
	if c.Flows.CPULimit.Duration < 10*time.Millisecond || c.Flows.CPULimit.Duration > time.Minute {
		return bad("flows.cpu_limit", "%s is not between 10ms and 1m", c.Flows.CPULimit)
	}
	if c.Flows.CallLimit.Duration < time.Minute {
		return bad("flows.call_limit", "%s is shorter than 1m", c.Flows.CallLimit)
	}
	cal, err := tickets.NewCalendar(c.Calendar.CalendarConfig)
	if err != nil {
		return bad("calendar", "%v", err)
	}
	if _, err := tickets.NewDeadlines(c.Deadlines, cal); err != nil {
		return bad("deadlines", "%v", err)
	}
	if err := checkHostPort(c.SIP.Listen); err != nil {
		return bad("sip.listen", "%v", err)
	}
	if c.SIP.MediaIP != "" && net.ParseIP(c.SIP.MediaIP) == nil {
		return bad("sip.media_ip", "%q is not an IP address", c.SIP.MediaIP)
	}
	if c.SIP.RTPPortMin != 0 || c.SIP.RTPPortMax != 0 {
		if c.SIP.RTPPortMin < 1024 || c.SIP.RTPPortMax > 65535 || c.SIP.RTPPortMax-c.SIP.RTPPortMin < 2 {
			return bad("sip.rtp_port_min", "range %d-%d must lie within 1024-65535 and hold at least one port pair", c.SIP.RTPPortMin, c.SIP.RTPPortMax)
		}
	}
	if c.SIP.RTPTimeout.Duration < time.Second {
		return bad("sip.rtp_timeout", "%s is shorter than 1s", c.SIP.RTPTimeout)
	}
	if c.SIP.AnswerDelay.Duration < 0 || c.SIP.AnswerDelay.Duration > time.Minute {
		return bad("sip.answer_delay", "%s is not between 0s and 1m", c.SIP.AnswerDelay)
	}
	if c.SIP.JitterDepth < 1 || c.SIP.JitterDepth > 50 {
		return bad("sip.jitter_depth", "%d is not between 1 and 50 packets", c.SIP.JitterDepth)
	}
	if len(c.SIP.Codecs) == 0 {
		return bad("sip.codecs", "must name at least one of PCMU, PCMA, opus")
	}
	for _, k := range c.SIP.Codecs {
		switch strings.ToLower(k) {
		case "pcmu", "pcma", "opus":
		default:
			return bad("sip.codecs", "%q is not one of PCMU, PCMA, opus", k)
		}
	}
	limits := []struct {
		key    string
		v, max int
	}{
		{"sip.max_calls", c.SIP.MaxCalls, 100000},
		{"sip.max_calls_per_source", c.SIP.MaxCallsPerSource, c.SIP.MaxCalls},
		{"sip.max_pending", c.SIP.MaxPending, c.SIP.MaxCalls},
		{"sip.max_pending_per_source", c.SIP.MaxPendingPerSource, c.SIP.MaxPending},
		{"sip.queue.max_failures", c.SIP.Queue.MaxFailures, 1000},
		{"sip.queue.address_max_failures", c.SIP.Queue.AddressMaxFailures, 10000},
		{"sip.outbound.max_concurrent", c.SIP.Outbound.MaxConcurrent, 1000},
		{"console.login_rate", c.Console.LoginRate, 10000},
		{"console.hash_concurrency", c.Console.HashConcurrency, 64},
	}
	for _, l := range limits {
		if l.v < 1 || l.v > l.max {
			return bad(l.key, "%d is not between 1 and %d", l.v, l.max)
		}
	}
	if c.SIP.Trunk != "" {
		if _, err := sip.ParseTrunk(c.SIP.Trunk); err != nil {
			return bad("sip.trunk", "%v", err)
		}
	}
	if err := c.SIP.validateTrunkTLS(); err != nil {
		return err
	}
	if _, err := c.Retention.Policy(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.Retention.Enabled && c.Retention.At == "" {
		return bad("retention.at", "the daily run needs a time of day (HH:MM)")
	}
	if c.Surveys.Enabled {
		switch c.Engine.Telephony {
		case "sip":
			if c.SIP.Trunk == "" {
				return bad("surveys.enabled", "survey calls on the embedded line need a sip.trunk")
			}
		case "ari":
			if c.ARI.OutboundEndpoint == "" {
				return bad("surveys.enabled", "survey calls through Asterisk need ari.outbound_endpoint (e.g. \"PJSIP/{number}@trunk\")")
			}
		case "esl":
			if c.ESL.Outbound.Gateway == "" || c.ESL.InboundAddr == "" {
				return bad("surveys.enabled", "survey calls through FreeSWITCH need esl.outbound.gateway and esl.inbound_addr (originate runs over the inbound event socket)")
			}
		}
	}
	if c.SIP.CallerID != "" && !ivr.DialableNumber(c.SIP.CallerID) {
		return bad("sip.caller_id", "%q is not a phone number (digits, an optional leading +)", c.SIP.CallerID)
	}
	if p := c.SIP.Outbound.PerSecond; p <= 0 || p > 100 {
		return bad("sip.outbound.per_second", "%g is not above 0 and at most 100", p)
	}
	if r := c.SIP.Outbound.Retries; r < 0 || r > 20 {
		return bad("sip.outbound.retries", "%d is not between 0 and 20", r)
	}
	bounds := []durationBound{
		{"sip.ack_timeout", c.SIP.AckTimeout.Duration, time.Second, 2 * time.Minute},
		{"sip.queue.backoff", c.SIP.Queue.Backoff.Duration, 10 * time.Millisecond, time.Minute},
		{"sip.queue.lockout", c.SIP.Queue.Lockout.Duration, time.Minute, 24 * time.Hour},
		{"surveys.period", c.Surveys.Period.Duration, time.Hour, 3 * 366 * 24 * time.Hour},
		{"surveys.every", c.Surveys.Every.Duration, time.Second, 24 * time.Hour},
		{"sip.outbound.ring_timeout", c.SIP.Outbound.RingTimeout.Duration, 5 * time.Second, 5 * time.Minute},
		{"sip.outbound.backoff", c.SIP.Outbound.Backoff.Duration, time.Second, 24 * time.Hour},
		{"sip.outbound.max_backoff", c.SIP.Outbound.MaxBackoff.Duration, c.SIP.Outbound.Backoff.Duration, 24 * time.Hour},
		{"console.hash_wait", c.Console.HashWait.Duration, 10 * time.Millisecond, 30 * time.Second},
	}
	bounds = append(bounds, c.SIP.Outbound.bounds("sip.outbound")...)
	bounds = append(bounds, c.ARI.bounds("ari")...)
	bounds = append(bounds, c.ESL.Outbound.bounds("esl.outbound")...)
	for _, d := range bounds {
		if d.v < d.min || d.v > d.max {
			return bad(d.key, "%s is not between %s and %s", d.v, d.min, d.max)
		}
	}
	if c.Console.Listen != "" {
		if err := checkHostPort(c.Console.Listen); err != nil {
			return bad("console.listen", "%v", err)
		}
		if c.Console.Listen == c.HTTP.Listen {
			return bad("console.listen", "must differ from http.listen (the metrics listener stays private)")
		}
	}
	if c.Chat.Listen != "" {
		if err := checkHostPort(c.Chat.Listen); err != nil {
			return bad("chat.listen", "%v", err)
		}
		if c.Chat.Listen == c.HTTP.Listen || c.Chat.Listen == c.Console.Listen {
			return bad("chat.listen", "must differ from http.listen and console.listen (the chat carries no console cookie, the metrics stay private)")
		}
	}
	for _, o := range c.Chat.Origins {
		if strings.Contains(o, "/") {
			return bad("chat.origins", "%q: give the origin's host (portal.gov.ro, *.gov.ro), not a URL", o)
		}
	}
	if c.Chat.MaxMessage < 0 || c.Chat.MaxMessage > 10000 {
		return bad("chat.max_message", "%d is not between 0 (the default, 2000) and 10000", c.Chat.MaxMessage)
	}
	if c.Chat.PerSecond < 0 || c.Chat.PerSecond > 100 {
		return bad("chat.per_second", "%d is not between 0 (the default, 5) and 100", c.Chat.PerSecond)
	}
	if c.Chat.NewSessions < 0 || c.Chat.NewSessions > 10000 {
		return bad("chat.new_sessions", "%d is not between 0 (the default, 20) and 10000", c.Chat.NewSessions)
	}
	if d := c.Chat.Idle.Duration; d != 0 && (d < time.Minute || d > 24*time.Hour) {
		return bad("chat.idle", "%s is not between 1m and 24h", d)
	}
	if err := c.Console.validateSAML(); err != nil {
		return err
	}
	if c.Console.MaxFailures < 1 || c.Console.MaxFailures > 100 {
		return bad("console.max_failures", "%d is not between 1 and 100", c.Console.MaxFailures)
	}
	if c.Console.Lockout.Duration < time.Minute {
		return bad("console.lockout", "%s is shorter than 1m", c.Console.Lockout)
	}
	if c.Console.SessionTTL.Duration < 5*time.Minute || c.Console.SessionTTL.Duration > 7*24*time.Hour {
		return bad("console.session_ttl", "%s is not between 5m and 168h", c.Console.SessionTTL)
	}
	if c.Webhook.URL != "" {
		if !strings.HasPrefix(c.Webhook.URL, "http://") && !strings.HasPrefix(c.Webhook.URL, "https://") {
			return bad("webhook.url", "%q is not an http:// or https:// URL", c.Webhook.URL)
		}
		if len(c.Webhook.Secret) < 16 {
			return bad("webhook.secret", "must be at least 16 bytes when webhook.url is set")
		}
	}
	if c.Email.MaxSizeMB < 0 || c.Email.MaxSizeMB > 1024 {
		return bad("email.max_size_mb", "%d is not between 0 (the default, 25) and 1024", c.Email.MaxSizeMB)
	}
	if c.Email.AcksPerHour < 0 {
		return bad("email.acks_per_hour", "%d is negative", c.Email.AcksPerHour)
	}
	if c.Email.IMAPURL == "" && (c.Email.SMTPURL != "" || c.Email.Address != "") {
		return bad("email.imap_url", "empty while email.smtp_url or email.address is set: the channel is off without it")
	}
	if err := c.Email.channel().Validate(); err != nil {
		// The first error names its key (email.imap_url...).
		return fmt.Errorf("config: %w", firstErr(err))
	}
	if len(c.Email.Mailboxes) > 0 && c.Email.IMAPURL == "" {
		return bad("email.imap_url", "empty while email.mailboxes are listed: the main mailbox comes first")
	}
	for i, mb := range c.Email.Mailboxes[:min(len(c.Email.Mailboxes), 100)] {
		if mb.IMAPURL == "" {
			return bad(fmt.Sprintf("email.mailboxes[%d].imap_url", i), "empty")
		}
		if err := c.Email.mailboxes()[i+1].Validate(); err != nil {
			return bad(fmt.Sprintf("email.mailboxes[%d]", i), "%v", firstErr(err))
		}
	}
	if (len(c.Recording.Peers) > 0 || c.Recording.Secret != "") && len(c.Recording.Secret) < 16 {
		return bad("recordings.secret", "must be at least 16 bytes when set, and is required when recordings.peers is set")
	}
	for name, u := range c.Recording.Peers {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return bad("recordings.peers", "engine %q: %q is not an http:// or https:// URL", name, u)
		}
	}
	sp := c.Speech
	if sp.VADThreshold < 0.05 || sp.VADThreshold > 0.95 {
		return bad("speech.vad_threshold", "%g is not between 0.05 and 0.95", sp.VADThreshold)
	}
	if sp.VAD != "shared" && sp.VAD != "per-call" {
		return bad("speech.vad", "%q is not shared or per-call", sp.VAD)
	}
	if sp.MinSpeech.Duration < 60*time.Millisecond || sp.MinSpeech.Duration > time.Second {
		return bad("speech.min_speech", "%s is not between 60ms and 1s", sp.MinSpeech)
	}
	if sp.NoiseMarginDB < 0 || sp.NoiseMarginDB > 40 {
		return bad("speech.noise_margin_db", "%g is not between 0 and 40 dB", sp.NoiseMarginDB)
	}
	if sp.EndSilence.Duration < 200*time.Millisecond || sp.EndSilence.Duration > 5*time.Second {
		return bad("speech.end_silence", "%s is not between 200ms and 5s", sp.EndSilence)
	}
	if sp.DigitsEndSilence.Duration < sp.EndSilence.Duration || sp.DigitsEndSilence.Duration > 10*time.Second {
		return bad("speech.digits_end_silence", "%s is not between end_silence (%s) and 10s", sp.DigitsEndSilence, sp.EndSilence)
	}
	if sp.IncompleteSilence.Duration < sp.EndSilence.Duration || sp.IncompleteSilence.Duration > 5*time.Second {
		return bad("speech.incomplete_silence", "%s is not between end_silence (%s) and 5s", sp.IncompleteSilence, sp.EndSilence)
	}
	if sp.MaxUtterance.Duration < 2*time.Second || sp.MaxUtterance.Duration > time.Minute {
		return bad("speech.max_utterance", "%s is not between 2s and 1m", sp.MaxUtterance)
	}
	if sp.MaxCalls < -1 {
		return bad("speech.max_calls", "%d: want a number of calls, 0 (sized by the machine's cores) or -1 (no limit)", sp.MaxCalls)
	}
	if sp.FinishTimeout.Duration < 200*time.Millisecond || sp.FinishTimeout.Duration > 30*time.Second {
		return bad("speech.finish_timeout", "%s is not between 200ms and 30s", sp.FinishTimeout)
	}
	switch sp.Recognizer {
	case "embedded", "sherpa":
	case "vosk":
		if !strings.HasPrefix(sp.Vosk.URL, "ws://") && !strings.HasPrefix(sp.Vosk.URL, "wss://") {
			return bad("speech.vosk.url", "%q is not a ws:// or wss:// URL (speech.recognizer is vosk)", sp.Vosk.URL)
		}
	case "openai":
	default:
		return bad("speech.recognizer", "%q is not embedded, vosk, openai or sherpa", sp.Recognizer)
	}
	switch sp.Synthesizer {
	case "embedded", "openai", "sherpa":
	default:
		return bad("speech.synthesizer", "%q is not embedded, openai or sherpa", sp.Synthesizer)
	}
	if sp.Recognizer == "openai" || sp.Synthesizer == "openai" {
		if !strings.HasPrefix(sp.OpenAI.URL, "http://") && !strings.HasPrefix(sp.OpenAI.URL, "https://") {
			return bad("speech.openai.url", "%q is not an http:// or https:// URL (with the version: http://HOST:PORT/v1)", sp.OpenAI.URL)
		}
	}
	if sp.Recognizer == "sherpa" && sp.Sherpa.ASRDirRO == "" && sp.Sherpa.ASRDirEN == "" {
		return bad("speech.sherpa.asr_dir_ro", "a model folder is needed when speech.recognizer is sherpa (docs/speech.md)")
	}
	if sp.Synthesizer == "sherpa" && sp.Sherpa.TTSDirRO == "" && sp.Sherpa.TTSDirEN == "" {
		return bad("speech.sherpa.tts_dir_ro", "a voice folder is needed when speech.synthesizer is sherpa (docs/speech.md)")
	}
	if c.SIP.Queue.Enabled && c.Engine.Telephony != "ari" {
		if err := c.queueConfig().Validate(); err != nil {
			return bad("sip.queue", "%v", err)
		}
	}
	if err := checkHostPort(c.HTTP.Listen); err != nil {
		return bad("http.listen", "%v", err)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP address", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", s)
	}
	return nil
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// ariConfig maps the [ari] table onto the adapter's configuration.
func (c Config) ariConfig() ari.Config {
	a := c.ARI
	return ari.Config{
		Servers:    []ari.ServerConfig{{URL: a.URL, User: a.User, Password: a.Password, App: a.App}},
		RTPAddress: a.RTPAddress, RTPPortMin: a.RTPPortMin, RTPPortMax: a.RTPPortMax, Format: a.Format,
		RTPTimeout: a.RTPTimeout.Duration, RequestTimeout: a.RequestTimeout.Duration, JitterDepth: c.SIP.JitterDepth,
		Handoff: ari.HandoffConfig{Mode: a.HandoffMode, Context: a.HandoffContext, Extension: a.HandoffExtension,
			Priority: a.HandoffPriority, Endpoint: a.HandoffEndpoint},
		Outbound: ari.OutboundConfig{Endpoint: a.OutboundEndpoint, CallerID: a.OutboundCallerID, RingTimeout: a.OutboundRingTimeout.Duration,
			Machine: a.detection()},
	}
}

// eslConfig maps the [esl] table onto the adapter's configuration.
func (c Config) eslConfig() esl.Config {
	e := c.ESL
	out := esl.Config{
		Listen: e.Listen, MediaDial: e.MediaDial, MediaCodec: e.MediaCodec, LegHeader: e.LegHeader,
		Handoff: esl.Handoff{Mode: e.Handoff.Mode, Context: e.Handoff.Context, Domain: e.Handoff.Domain},
	}
	if o := e.Outbound; o.Gateway != "" {
		out.Outbound = esl.Outbound{Gateway: o.Gateway, CallerID: o.CallerID, RingTimeout: o.RingTimeout.Duration,
			Addr: e.InboundAddr, Password: e.InboundPassword, Socket: o.Socket, Machine: o.detection()}
	}
	return out
}

// validateTrunkTLS checks sip.trunk_ca, sip.trunk_server_name,
// sip.trunk_cert and sip.trunk_key: set only for a TLS trunk, the files
// readable and holding what they should, at start rather than at the first
// call.
func (s SIPConfig) validateTrunkTLS() error {
	bad := func(key string, format string, a ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...))
	}
	isTLS := false
	if s.Trunk != "" {
		t, _ := sip.ParseTrunk(s.Trunk) // checked before
		isTLS = t.Transport == sip.TransportTLS
	}
	for _, k := range []struct{ key, v string }{
		{"sip.trunk_ca", s.TrunkCA}, {"sip.trunk_server_name", s.TrunkServerName}, {"sip.trunk_cert", s.TrunkCert}, {"sip.trunk_key", s.TrunkKey},
	} {
		if k.v != "" && !isTLS {
			return bad(k.key, "is set, but sip.trunk is not a TLS trunk (sips:... or ;transport=tls)")
		}
	}
	if s.TrunkCA != "" {
		if err := sip.AppendTrunkCA(x509.NewCertPool(), s.TrunkCA); err != nil {
			return bad("sip.trunk_ca", "%v", err)
		}
	}
	if (s.TrunkCert == "") != (s.TrunkKey == "") {
		return bad("sip.trunk_cert", "a client certificate needs both sip.trunk_cert and sip.trunk_key")
	}
	if s.TrunkCert != "" {
		if _, err := tls.LoadX509KeyPair(s.TrunkCert, s.TrunkKey); err != nil {
			return bad("sip.trunk_cert", "%v", err)
		}
	}
	return nil
}

// outboundConfig maps sip.trunk, sip.caller_id and [sip.outbound] onto the
// line's outbound configuration; allowed is the working calendar's Open
// when sip.outbound.working_hours is set.
func (c Config) outboundConfig(allowed func(time.Time) bool) sip.OutboundConfig {
	o := c.SIP.Outbound
	out := sip.OutboundConfig{CallerID: c.SIP.CallerID, MaxConcurrent: o.MaxConcurrent, PerSecond: o.PerSecond,
		RingTimeout: o.RingTimeout.Duration, Retries: o.Retries, Backoff: o.Backoff.Duration, MaxBackoff: o.MaxBackoff.Duration}
	if out.Retries == 0 {
		out.Retries = -1 // none (the line's 0 means its default)
	}
	if c.SIP.Trunk != "" {
		out.Trunk, _ = sip.ParseTrunk(c.SIP.Trunk) // checked by Validate
	}
	out.TLS = sip.TrunkTLS{CAFile: c.SIP.TrunkCA, ServerName: c.SIP.TrunkServerName, CertFile: c.SIP.TrunkCert, KeyFile: c.SIP.TrunkKey}
	if o.WorkingHours {
		out.Allowed = allowed
	}
	out.Machine = o.detection()
	return out
}

// validateSAML checks [console.saml] (when idp_metadata is set) and
// console.public_url; the files are read when the console starts.
func (c ConsoleConfig) validateSAML() error {
	bad := func(key string, format string, a ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...))
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return bad("console.public_url", "%q is not an https:// (or http://) URL of a host, without a path", c.PublicURL)
		}
	}
	sc := c.SAML
	if sc.IDPMetadata == "" {
		return nil
	}
	switch {
	case c.Listen == "":
		return bad("console.saml.idp_metadata", "is set, but the console is off (console.listen is empty)")
	case c.PublicURL == "":
		return bad("console.public_url", "is required with console.saml (the service provider's entity ID and ACS URL are derived from it)")
	case sc.Cert == "":
		return bad("console.saml.cert", "is required with console.saml.idp_metadata")
	case sc.Key == "":
		return bad("console.saml.key", "is required with console.saml.idp_metadata")
	case sc.RoleAttribute == "":
		return bad("console.saml.role_attribute", "is required with console.saml.idp_metadata")
	case len(sc.Roles) == 0:
		return bad("console.saml.roles", "is empty: map the identity provider's role values to operator, specialist, administrator, supervisor, monitor")
	}
	for v, r := range sc.Roles {
		if !slices.Contains(tickets.Roles, tickets.Role(r)) {
			return bad("console.saml.roles", "%q = %q: not one of %v", v, r, tickets.Roles)
		}
	}
	for _, n := range sc.BreakGlass {
		if n == "" {
			return bad("console.saml.break_glass", "an empty name")
		}
	}
	return nil
}
