package speechtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/internal/editdist"
	"github.com/govline/ivr/speech"
)

// The speech test set: utterances of the grammars the shipped flows use
// (flows/main.lua's main menu with its synonyms, yes/no, digits, and the
// escape phrases every question accepts), rendered with several synthetic
// voices and speeds, passed through the telephone path (8 kHz, G.711 µ-law
// or A-law encode and decode, optional white noise at a given SNR), and
// scored by sentence accuracy (the grammar tag is right) and word error
// rate. Out-of-grammar utterances (unrelated sentences, "hmm", a cough-like
// burst of noise) measure what a confidence is worth.
//
// The voices come in two parts: DevVoices, on which the engine is tuned,
// and HeldOutVoices (other espeak-ng variants and speeds), which are only
// measured, never tuned on.

// MenuOption is one option of the shipped main menu: its id (what the
// flow's option match gives) and every spoken form the flow hands the
// recognizer (its label in both languages and its synonyms).
type MenuOption struct {
	ID      string
	Phrases []string
}

// ShippedMenu is flows/main.lua's MENU as the recognizer gets it (the
// ivr package's tests check that it matches the file).
var ShippedMenu = []MenuOption{
	{"identity_card", []string{"cartea de identitate", "the identity card", "buletin", "buletinul", "carte de identitate", "cartea electronica", "CEI", "act de identitate", "identity card", "ID card", "ID"}},
	{"passport", []string{"pașaport", "passport", "pasaport", "pasaportul", "passport"}},
	{"portal_account", []string{"contul de pe portal", "your portal account", "cont", "contul", "portal", "parola", "parolă", "account", "password", "login"}},
	{"online_request", []string{"o cerere online", "an online request", "cerere online", "cerere", "depun o cerere", "online request", "application", "submit"}},
	{"request_status", []string{"stadiul unei solicitări", "the status of a request", "stadiul", "stadiu", "status", "solicitare", "numar de inregistrare", "tichet", "ticket", "where is my request"}},
	{"english", []string{"English", "Romanian", "english", "engleza", "in engleza", "romana", "romanian", "limba romana"}},
}

// MenuGrammar returns the grammar a call in lang listens with at the
// shipped main menu: every option's spoken forms (in the call's language,
// as the flow hands them over), tagged with the option's id, and the
// escape phrases of both languages (speech.Grammar.AddEscapes).
func MenuGrammar(lang string) *speech.Grammar {
	g := &speech.Grammar{}
	for _, o := range ShippedMenu {
		var say []string
		for _, p := range o.Phrases {
			say = append(say, speech.NormalizeText(p))
		}
		g.Add(o.ID, say...)
	}
	if !WithEscapes {
		return g.Add("operator", oldOperator[lang]...)
	}
	return g.AddEscapes(lang, false)
}

// WithEscapes adds the escape phrases to the test set's grammars (as the
// line does); false gives the grammars as they were before the escapes
// (the call's language's operator phrases only), for measuring them.
var WithEscapes = true

var oldOperator = map[string][]string{
	"ro": {"operator", "un operator", "vreau să vorbesc cu un operator", "vreau un operator"},
	"en": {"operator", "agent", "an operator", "i want to speak to an operator"},
}

// ShortMenu is a small menu grammar in Romanian (tags "buletin",
// "pașaport", "cont", "operator", "english"; no escapes) for conformance
// and protocol tests (the fake servers of network engines flatten a
// grammar into one language's phrases).
func ShortMenu() *speech.Grammar {
	g := &speech.Grammar{}
	g.Add("buletin", "buletin", "buletinul", "carte de identitate")
	g.Add("pașaport", "pașaport", "pașaportul")
	g.Add("cont", "cont", "contul")
	g.Add("operator", "operator", "vreau să vorbesc cu un operator")
	g.Add("english", "english")
	return g
}

// YesNoGrammar is the grammar of a yes/no question in lang, escapes
// included.
func YesNoGrammar(lang string) *speech.Grammar {
	if !WithEscapes {
		return speech.YesNo(lang).Add("operator", oldOperator[lang]...)
	}
	return speech.YesNo(lang).AddEscapes(lang, true)
}

// DigitsGrammar accepts up to 13 digits (a CNP).
func DigitsGrammar() *speech.Grammar { return &speech.Grammar{Digits: 13} }

// Item is one utterance of the test set.
type Item struct {
	Lang    string // the call's language (the stream's and the grammar's)
	Grammar string // "menu", "yesno", "digits" (1..13 digits), "digitsN" (exactly as many as said)
	Say     string
	WantTag string // "" for an out-of-grammar utterance: any answer is wrong
	// Part is "" for the in-grammar answers of the call's language,
	// "escape" for an escape phrase said in the other language (by the
	// same speaker speaking it), "oog" for out-of-grammar speech.
	Part string
}

// Cough is the Say of an item that is a cough-like burst of noise, not
// speech.
const Cough = "<cough>"

// Grammar returns the item's grammar.
func (it Item) grammar() *speech.Grammar {
	switch it.Grammar {
	case "menu":
		return MenuGrammar(it.Lang)
	case "yesno":
		return YesNoGrammar(it.Lang)
	case "digitsN":
		n := len(it.WantTag)
		return &speech.Grammar{Digits: n, MinDigits: n}
	}
	return DigitsGrammar()
}

// Items returns the utterances of lang: the menu, yes/no, digits of free
// length, and the same digits with their length known.
func Items(lang string) []Item {
	items := baseItems(lang)
	for _, it := range items {
		if it.Grammar == "digits" {
			it.Grammar = "digitsN"
			items = append(items, it)
		}
	}
	return items
}

// EscapeItems are the escape phrases said in the other language than the
// call's, at the main menu: a caller of the Romanian line who asks in
// English, and the other way round.
func EscapeItems(lang string) []Item {
	if lang == "ro" {
		return []Item{
			{"ro", "menu", "English", "english", "escape"},
			{"ro", "menu", "talk to an operator", "operator", "escape"},
			{"ro", "menu", "operator", "operator", "escape"},
			{"ro", "menu", "yes", "yes", "escape"},
			{"ro", "menu", "no", "no", "escape"},
		}
	}
	return []Item{
		{"en", "menu", "română", "romana", "escape"},
		{"en", "menu", "vreau să vorbesc cu un operator", "operator", "escape"},
		{"en", "menu", "operator", "operator", "escape"},
		{"en", "menu", "da", "da", "escape"},
		{"en", "menu", "nu", "nu", "escape"},
	}
}

// OutOfGrammar are utterances no grammar holds, said at the main menu and
// at a yes/no question: unrelated sentences, a hesitation, a cough.
func OutOfGrammar(lang string) []Item {
	var says []string
	if lang == "ro" {
		says = []string{"astăzi plouă la București", "mulțumesc frumos", "hmm", "banana", "vine trenul de la Cluj", Cough}
	} else {
		says = []string{"the weather is nice today", "thank you very much", "hmm", "banana", "the train from Leeds is late", Cough}
	}
	var out []Item
	for _, g := range []string{"menu", "yesno"} {
		for _, s := range says {
			out = append(out, Item{Lang: lang, Grammar: g, Say: s, Part: "oog"})
		}
	}
	return out
}

func baseItems(lang string) []Item {
	if lang == "ro" {
		return []Item{
			{"ro", "menu", "buletin", "identity_card", ""},
			{"ro", "menu", "buletinul", "identity_card", ""},
			{"ro", "menu", "carte de identitate", "identity_card", ""},
			{"ro", "menu", "cartea de identitate", "identity_card", ""},
			{"ro", "menu", "pașaport", "passport", ""},
			{"ro", "menu", "pașaportul", "passport", ""},
			{"ro", "menu", "cont", "portal_account", ""},
			{"ro", "menu", "contul de pe portal", "portal_account", ""},
			{"ro", "menu", "parola", "portal_account", ""},
			{"ro", "menu", "cerere online", "online_request", ""},
			{"ro", "menu", "depun o cerere", "online_request", ""},
			{"ro", "menu", "stadiul", "request_status", ""},
			{"ro", "menu", "stadiul unei solicitări", "request_status", ""},
			{"ro", "menu", "tichet", "request_status", ""},
			{"ro", "menu", "operator", "operator", ""},
			{"ro", "menu", "vreau să vorbesc cu un operator", "operator", ""},
			{"ro", "menu", "un om", "operator", ""},
			{"ro", "menu", "English", "english", ""},
			{"ro", "menu", "engleză", "english", ""},
			{"ro", "yesno", "da", "yes", ""},
			{"ro", "yesno", "nu", "no", ""},
			{"ro", "yesno", "corect", "yes", ""},
			{"ro", "yesno", "sigur", "yes", ""},
			{"ro", "yesno", "greșit", "no", ""},
			{"ro", "digits", "zero șapte doi unu", "0721", ""},
			{"ro", "digits", "cinci opt nouă patru", "5894", ""},
			{"ro", "digits", "unu doi trei", "123", ""},
			{"ro", "digits", "șase zero trei opt", "6038", ""},
		}
	}
	return []Item{
		{"en", "menu", "identity card", "identity_card", ""},
		{"en", "menu", "the identity card", "identity_card", ""},
		{"en", "menu", "id card", "identity_card", ""},
		{"en", "menu", "passport", "passport", ""},
		{"en", "menu", "account", "portal_account", ""},
		{"en", "menu", "your portal account", "portal_account", ""},
		{"en", "menu", "password", "portal_account", ""},
		{"en", "menu", "online request", "online_request", ""},
		{"en", "menu", "application", "online_request", ""},
		{"en", "menu", "status", "request_status", ""},
		{"en", "menu", "the status of a request", "request_status", ""},
		{"en", "menu", "where is my request", "request_status", ""},
		{"en", "menu", "operator", "operator", ""},
		{"en", "menu", "i want to talk to an operator", "operator", ""},
		{"en", "menu", "agent", "operator", ""},
		{"en", "menu", "romanian", "english", ""},
		{"en", "yesno", "yes", "yes", ""},
		{"en", "yesno", "no", "no", ""},
		{"en", "yesno", "correct", "yes", ""},
		{"en", "yesno", "sure", "yes", ""},
		{"en", "yesno", "wrong", "no", ""},
		{"en", "digits", "zero seven two one", "0721", ""},
		{"en", "digits", "five eight nine four", "5894", ""},
		{"en", "digits", "one two three", "123", ""},
		{"en", "digits", "six zero three eight", "6038", ""},
	}
}

// Voice is one synthetic speaker of the test set.
type Voice struct {
	Lang    string // synthesizer language ("ro", "en", "en-us")
	Variant string // "", "m3", "f2"...
	Speed   int    // words per minute
}

// Voices returns the speakers of the accuracy table for lang (the first
// four of the development part).
func Voices(lang string) []Voice { return DevVoices(lang)[:4] }

// DevVoices are the speakers the recognizer is tuned on: the four of the
// original table, a female voice and a fast one.
func DevVoices(lang string) []Voice {
	if lang == "ro" {
		return []Voice{{"ro", "", 150}, {"ro", "m3", 170}, {"ro", "f2", 140}, {"ro", "m1", 190}, {"ro", "f4", 155}, {"ro", "m5", 210}}
	}
	return []Voice{{"en-us", "", 150}, {"en", "m3", 170}, {"en-us", "f2", 140}, {"en", "", 190}, {"en-us", "f4", 155}, {"en", "m5", 210}}
}

// HeldOutVoices are speakers nothing was tuned on: six other espeak-ng
// variants (three female), each at a slow and a fast speed. Measure on
// them; never change the engine to fit them.
func HeldOutVoices(lang string) []Voice {
	variants := []string{"f1", "f3", "f5", "m2", "m4", "m6"}
	var out []Voice
	for i, v := range variants {
		l := lang
		if lang == "en" && i%2 == 1 {
			l = "en-us"
		}
		out = append(out, Voice{l, v, 135}, Voice{l, v, 200})
	}
	return out
}

// Speaking returns v speaking lang (the same variant and speed): the
// speaker of an escape item said in the other language.
func (v Voice) Speaking(lang string) Voice {
	switch {
	case lang == "ro":
		v.Lang = "ro"
	case v.Lang == "ro":
		v.Lang = "en-us"
	}
	return v
}

func (v Voice) String() string {
	if v.Variant == "" {
		return fmt.Sprintf("%s@%d", v.Lang, v.Speed)
	}
	return fmt.Sprintf("%s+%s@%d", v.Lang, v.Variant, v.Speed)
}

// Condition is the channel an utterance goes through.
type Condition struct {
	Name string
	Rate int     // rate the recognizer gets (8000 = the telephone path)
	G711 bool    // G.711 encode and decode at 8 kHz (µ-law unless ALaw)
	ALaw bool    // A-law, the European network's codec
	SNR  float64 // dB of white noise added after the codec; 0 = none
}

// Conditions returns the conditions of the accuracy table.
func Conditions() []Condition {
	return []Condition{
		{"clean 16 kHz", 16000, false, false, 0},
		{"G.711 8 kHz", 8000, true, false, 0},
		{"G.711 + noise 20 dB", 8000, true, false, 20},
		{"G.711 + noise 10 dB", 8000, true, false, 10},
		{"G.711 A-law 8 kHz", 8000, true, true, 0},
	}
}

// Telephone returns the two G.711 conditions without noise: µ-law and
// A-law.
func Telephone() []Condition {
	c := Conditions()
	return []Condition{c[1], c[4]}
}

// Channel passes pcm (at c.Rate) through condition c; seed fixes the
// noise.
func Channel(pcm []int16, c Condition, seed uint64) []int16 {
	out := make([]int16, len(pcm))
	copy(out, pcm)
	if c.G711 {
		for i, s := range out {
			if c.ALaw {
				out[i] = audio.AlawToLinear(audio.LinearToAlaw(s))
			} else {
				out[i] = audio.UlawToLinear(audio.LinearToUlaw(s))
			}
		}
	}
	if c.SNR > 0 {
		// noise power from the speech power of the voiced part
		var sum float64
		var n int
		for _, s := range out {
			if s > 300 || s < -300 {
				sum += float64(s) * float64(s)
				n++
			}
		}
		if n > 0 {
			sigma := math.Sqrt(sum/float64(n)) / math.Pow(10, c.SNR/20)
			rng := rand.New(rand.NewPCG(seed, 7))
			for i, s := range out {
				v := float64(s) + rng.NormFloat64()*sigma
				out[i] = int16(max(-32768, min(32767, v)))
			}
		}
	}
	return out
}

// CoughPCM is a cough-like burst at rate: 350 ms of noise, loud at once
// and fading, low-passed so that its energy sits where speech's does.
func CoughPCM(rate int, seed uint64) []int16 {
	rng := rand.New(rand.NewPCG(seed, 11))
	n := rate * 350 / 1000
	out := make([]int16, n)
	var lp float64
	for i := range out {
		lp += 0.35 * (rng.NormFloat64() - lp)
		env := math.Exp(-float64(i)/float64(rate)/0.08) * math.Min(1, float64(i)/float64(rate)/0.01)
		out[i] = int16(max(-32768, min(32767, 9000*env*lp*3)))
	}
	return out
}

// Scores are the outcome of a test-set run per grammar kind ("menu",
// "yesno", "digits", "digitsN"), over all of them ("all"), for the escape
// phrases said in the other language ("escape") and for out-of-grammar
// utterances ("oog", where Correct counts nothing: every answer is wrong).
type Scores map[string]Score

// Score is the outcome of a test-set run.
type Score struct {
	Utterances, Correct int // sentences whose tag was right
	Words, Errors       int // reference words and word errors (S+D+I)
}

// SentenceAccuracy is Correct/Utterances.
func (s Score) SentenceAccuracy() float64 { return float64(s.Correct) / float64(max(1, s.Utterances)) }

// WER is the word error rate.
func (s Score) WER() float64 { return float64(s.Errors) / float64(max(1, s.Words)) }

func (s Score) String() string {
	return fmt.Sprintf("%3d utt  sentence acc %5.1f%%  WER %5.1f%%", s.Utterances, 100*s.SentenceAccuracy(), 100*s.WER())
}

// PerCall makes Evaluate present each speaker's utterances in a
// condition as one call (StreamOptions.Call), so engines that adapt to a
// line do so; false, every utterance is the first of its call.
var PerCall bool

// Outcome is what the recognizer made of one item.
type Outcome struct {
	Item      Item
	Voice     Voice
	Condition Condition
	Result    speech.Result
	Correct   bool // the tag means what the item wants (never for out-of-grammar)
	Errors    int  // word errors
}

// Meaning maps a tag to what a flow makes of it: the language words'
// tags "english" and "romana" both switch language (main.lua's option
// "english"), and "da"/"yes", "nu"/"no" are the same answer.
func Meaning(tag string) string {
	switch tag {
	case "romana":
		return "english"
	case "da": // flows read yes and no in both languages
		return "yes"
	case "nu":
		return "no"
	}
	return tag
}

// Run says items with voices through condition c into r and returns each
// outcome, in order (voices outer, items inner). Misses are logged with
// t.Logf when verbose.
func Run(t testing.TB, r speech.Recognizer, syn speech.Synthesizer, items []Item, voices []Voice, c Condition, verbose bool) []Outcome {
	t.Helper()
	var out []Outcome
	ctx := context.Background()
	for vi, v := range voices {
		for ii, it := range items {
			sv := v
			if it.Part == "escape" {
				sv = v.Speaking(map[string]string{"ro": "en", "en": "ro"}[it.Lang])
			}
			var pcm []int16
			if it.Say == Cough {
				pcm = CoughPCM(c.Rate, uint64(vi*1000+ii))
			} else {
				pcm = Render(t, syn, speech.SynthRequest{Text: it.Say, Lang: sv.Lang, Voice: sv.Variant, Speed: sv.Speed, Rate: c.Rate})
			}
			pcm = append(append(Silence(c.Rate, 300*time.Millisecond), pcm...), Silence(c.Rate, 400*time.Millisecond)...)
			pcm = Channel(pcm, c, uint64(vi*1000+ii))
			o := speech.StreamOptions{Lang: it.Lang, Rate: c.Rate, Grammar: it.grammar()}
			if PerCall {
				o.Call = fmt.Sprintf("%s/%s", c.Name, v)
			}
			st, err := r.NewStream(ctx, o)
			if err != nil {
				t.Fatalf("NewStream: %v", err)
			}
			for _, f := range Frames(pcm, c.Rate) {
				if err := st.Write(f); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			res, err := st.Finish(ctx)
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			ref := strings.Fields(speech.NormalizeText(it.Say))
			oc := Outcome{Item: it, Voice: sv, Condition: c, Result: res, Errors: editdist.Distance(ref, strings.Fields(res.Text))}
			oc.Correct = it.WantTag != "" && Meaning(res.Tag) == Meaning(it.WantTag)
			if !oc.Correct && verbose {
				t.Logf("%s %s %s %q -> %q (confidence %.2f)", c.Name, sv, it.Grammar, it.Say, res.Text, res.Confidence)
			}
			out = append(out, oc)
		}
	}
	return out
}

// Tally sums outcomes per grammar kind, "all" (the kinds together),
// "escape" and "oog".
func Tally(outcomes []Outcome) Scores {
	scores := Scores{}
	for _, o := range outcomes {
		keys := []string{o.Item.Grammar, "all"}
		if o.Item.Part != "" {
			keys = []string{o.Item.Part}
		}
		for _, k := range keys {
			sc := scores[k]
			sc.Utterances++
			if o.Item.Say != Cough {
				sc.Words += len(strings.Fields(speech.NormalizeText(o.Item.Say)))
			}
			sc.Errors += o.Errors
			if o.Correct {
				sc.Correct++
			}
			scores[k] = sc
		}
	}
	return scores
}

// Evaluate runs items spoken by voices through condition c into r and
// scores the results. Failures are logged with t.Logf when verbose.
func Evaluate(t testing.TB, r speech.Recognizer, syn speech.Synthesizer, items []Item, voices []Voice, c Condition, verbose bool) Scores {
	t.Helper()
	return Tally(Run(t, r, syn, items, voices, c, verbose))
}
