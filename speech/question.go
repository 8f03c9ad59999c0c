package speech

// Question is what a flow waits for in one caller turn, as the recognizer
// needs it: the phone line builds the turn's grammar from it, and the flow
// simulator uses the same grammar to hear only what the line can hear.
type Question struct {
	Lang string
	// Kind is "choice", "yesno", "digits" or "free" (flows.Expect).
	Kind    string
	Phrases []string // the options' spoken forms, for a choice (or free speech that may name one)
	// MinDigits and MaxDigits bound a digit answer.
	MinDigits, MaxDigits int
}

// OperatorPhrases are the ways to ask for a person in a language, as every
// question of that language takes them (AddEscapes).
var OperatorPhrases = operatorSay

// ForQuestion builds the grammar of a question: yes/no in its language,
// digits within its bounds, or its phrases, with the escape phrases of
// both languages everywhere (AddEscapes); nil for free speech without
// phrases (open vocabulary, for the engines that have it).
func ForQuestion(q Question) *Grammar {
	lang := q.Lang
	if lang != "en" {
		lang = "ro"
	}
	var g *Grammar
	switch q.Kind {
	case "yesno":
		g = YesNo(lang)
	case "digits":
		g = &Grammar{Digits: q.MaxDigits, MinDigits: q.MinDigits}
		if g.Digits <= 0 {
			g.Digits = 20
		}
	default:
		if len(q.Phrases) == 0 {
			return nil
		}
		g = &Grammar{}
		seen := map[string]bool{}
		for _, p := range q.Phrases {
			if n := NormalizeText(p); n != "" && !seen[n] {
				seen[n] = true
				g.Add(n, n)
			}
		}
	}
	return g.AddEscapes(lang, q.Kind == "yesno")
}
