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
// (main menu, yes/no, digits), rendered with several synthetic voices and
// speeds, passed through the telephone path (8 kHz, G.711 µ-law encode and
// decode, optional white noise at a given SNR), and scored by sentence
// accuracy (the grammar tag is right) and word error rate.

// MenuGrammar returns the main-menu grammar of the shipped flows in lang.
func MenuGrammar(lang string) *speech.Grammar {
	g := &speech.Grammar{}
	if lang == "ro" {
		g.Add("buletin", "buletin", "buletinul", "carte de identitate", "am pierdut buletinul")
		g.Add("pașaport", "pașaport", "pașaportul")
		g.Add("cont", "cont", "contul")
		g.Add("operator", "operator", "vreau să vorbesc cu un operator")
		g.Add("english", "english")
		return g
	}
	g.Add("buletin", "identity card", "id card", "i lost my id card")
	g.Add("pașaport", "passport")
	g.Add("cont", "account")
	g.Add("operator", "operator", "agent", "i want to talk to an operator")
	g.Add("romana", "romanian")
	return g
}

// DigitsGrammar accepts up to 13 digits (a CNP).
func DigitsGrammar() *speech.Grammar { return &speech.Grammar{Digits: 13} }

// Item is one utterance of the test set.
type Item struct {
	Lang    string
	Grammar string // "menu", "yesno", "digits" (1..13 digits), "digitsN" (exactly as many as said)
	Say     string
	WantTag string
}

// Grammar returns the item's grammar.
func (it Item) grammar() *speech.Grammar {
	switch it.Grammar {
	case "menu":
		return MenuGrammar(it.Lang)
	case "yesno":
		return speech.YesNo(it.Lang)
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

func baseItems(lang string) []Item {
	if lang == "ro" {
		return []Item{
			{"ro", "menu", "buletin", "buletin"},
			{"ro", "menu", "am pierdut buletinul", "buletin"},
			{"ro", "menu", "carte de identitate", "buletin"},
			{"ro", "menu", "pașaport", "pașaport"},
			{"ro", "menu", "pașaportul", "pașaport"},
			{"ro", "menu", "cont", "cont"},
			{"ro", "menu", "operator", "operator"},
			{"ro", "menu", "vreau să vorbesc cu un operator", "operator"},
			{"ro", "menu", "English", "english"},
			{"ro", "yesno", "da", "yes"},
			{"ro", "yesno", "nu", "no"},
			{"ro", "yesno", "corect", "yes"},
			{"ro", "digits", "zero șapte doi unu", "0721"},
			{"ro", "digits", "cinci opt nouă patru", "5894"},
			{"ro", "digits", "unu doi trei", "123"},
			{"ro", "digits", "șase zero trei opt", "6038"},
		}
	}
	return []Item{
		{"en", "menu", "identity card", "buletin"},
		{"en", "menu", "i lost my id card", "buletin"},
		{"en", "menu", "passport", "pașaport"},
		{"en", "menu", "account", "cont"},
		{"en", "menu", "operator", "operator"},
		{"en", "menu", "i want to talk to an operator", "operator"},
		{"en", "menu", "agent", "operator"},
		{"en", "menu", "romanian", "romana"},
		{"en", "yesno", "yes", "yes"},
		{"en", "yesno", "no", "no"},
		{"en", "yesno", "correct", "yes"},
		{"en", "digits", "zero seven two one", "0721"},
		{"en", "digits", "five eight nine four", "5894"},
		{"en", "digits", "one two three", "123"},
		{"en", "digits", "six zero three eight", "6038"},
	}
}

// Voice is one synthetic speaker of the test set.
type Voice struct {
	Lang    string // synthesizer language ("ro", "en", "en-us")
	Variant string // "", "m3", "f2"...
	Speed   int    // words per minute
}

// Voices returns the speakers used for lang.
func Voices(lang string) []Voice {
	if lang == "ro" {
		return []Voice{{"ro", "", 150}, {"ro", "m3", 170}, {"ro", "f2", 140}, {"ro", "m1", 190}}
	}
	return []Voice{{"en-us", "", 150}, {"en", "m3", 170}, {"en-us", "f2", 140}, {"en", "", 190}}
}

// Condition is the channel an utterance goes through.
type Condition struct {
	Name string
	Rate int     // rate the recognizer gets (8000 = the telephone path)
	G711 bool    // µ-law encode and decode at 8 kHz
	SNR  float64 // dB of white noise added after the codec; 0 = none
}

// Conditions returns the conditions of the accuracy table.
func Conditions() []Condition {
	return []Condition{
		{"clean 16 kHz", 16000, false, 0},
		{"G.711 8 kHz", 8000, true, 0},
		{"G.711 + noise 20 dB", 8000, true, 20},
		{"G.711 + noise 10 dB", 8000, true, 10},
	}
}

// Channel passes pcm (at c.Rate) through condition c; seed fixes the
// noise.
func Channel(pcm []int16, c Condition, seed uint64) []int16 {
	out := make([]int16, len(pcm))
	copy(out, pcm)
	if c.G711 {
		for i, s := range out {
			out[i] = audio.UlawToLinear(audio.LinearToUlaw(s))
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

// Scores are the outcome of a test-set run per grammar kind ("menu",
// "yesno", "digits", "digitsN") and over all ("all").
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

// Evaluate runs items spoken by voices through condition c into r and
// scores the results. Failures are logged with t.Logf when verbose.
func Evaluate(t testing.TB, r speech.Recognizer, syn speech.Synthesizer, items []Item, voices []Voice, c Condition, verbose bool) Scores {
	t.Helper()
	scores := Scores{}
	ctx := context.Background()
	for vi, v := range voices {
		for ii, it := range items {
			pcm := Render(t, syn, speech.SynthRequest{Text: it.Say, Lang: v.Lang, Voice: v.Variant, Speed: v.Speed, Rate: c.Rate})
			pcm = append(append(Silence(c.Rate, 300*time.Millisecond), pcm...), Silence(c.Rate, 400*time.Millisecond)...)
			pcm = Channel(pcm, c, uint64(vi*1000+ii))
			o := speech.StreamOptions{Lang: it.Lang, Rate: c.Rate, Grammar: it.grammar()}
			if PerCall {
				o.Call = fmt.Sprintf("%s/%s+%s@%d", c.Name, v.Lang, v.Variant, v.Speed)
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
			errs := editdist.Distance(ref, strings.Fields(res.Text))
			ok := res.Tag == it.WantTag
			for _, k := range []string{it.Grammar, "all"} {
				sc := scores[k]
				sc.Utterances++
				sc.Words += len(ref)
				sc.Errors += errs
				if ok {
					sc.Correct++
				}
				scores[k] = sc
			}
			if !ok && verbose {
				t.Logf("%s %s+%s@%d %s %q -> %q", c.Name, v.Lang, v.Variant, v.Speed, it.Grammar, it.Say, res.Text)
			}
		}
	}
	return scores
}
