package flows

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Cartea de  Identitate!":  "cartea de identitate",
		"Ștefan ştefan":           "stefan stefan",
		"ȚARĂ ţară":               "tara tara",
		"mi-am pierdut buletinul": "mi am pierdut buletinul",
		"  Pașaport?  ":           "pasaport",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestYesNo(t *testing.T) {
	for in, want := range map[string]string{
		"da": "yes", "Da, sigur": "yes", "sigur": "yes", "yes": "yes", "Yes, it did": "yes", "1": "yes",
		"nu": "no", "Nu m-a ajutat": "no", "no": "no", "No, it did not": "no", "2": "no",
		"nu știu": "", "poate": "", "pașaport": "", "": "",
	} {
		if got := YesNo(in); got != want {
			t.Errorf("YesNo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSpokenDigits(t *testing.T) {
	for in, want := range map[string]string{
		"unu doi trei":                  "123",
		"one two three":                 "123",
		"numărul este patru cinci șase": "456",
		"șapte opt nouă zero":           "7890",
		"1 2 3":                         "123",
		"12 34":                         "1234",
		"double five":                   "55",
		"două şase":                     "26",
	} {
		got, ok := SpokenDigits(in)
		if !ok || got != want {
			t.Errorf("SpokenDigits(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if d, ok := SpokenDigits("nu știu numărul"); ok {
		t.Errorf("SpokenDigits without digits = %q, true", d)
	}
}

func TestMatchChoice(t *testing.T) {
	opts := []choice{
		{id: "cei", phrases: []string{"buletin", "carte de identitate"}},
		{id: "pass", phrases: []string{"pasaport"}},
		{id: "portal", phrases: []string{"cont", "cont nou"}},
	}
	for in, want := range map[string]int{
		"Vreau un pașaport":       1,
		"mi-am pierdut buletinul": -1, // "buletinul" is not the word "buletin"
		"Carte de identitate":     0,
		"pasaport sau buletin":    -1, // two options: ambiguous
		"vreau un cont nou":       2,
		"contul":                  -1,
		"":                        -1,
	} {
		if got := matchChoice(in, opts); got != want {
			t.Errorf("matchChoice(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestWantsOperator(t *testing.T) {
	for in, want := range map[string]bool{
		"vreau să vorbesc cu un operator": true, "Operatorul!": true, "I want a human": true,
		"om": true, "persoană": true, "agent": true, "talk to an operator": true,
		"pașaport": false, "operație": false, "omul": false, "persoanele": false,
	} {
		if got := WantsOperator(in); got != want {
			t.Errorf("WantsOperator(%q) = %v, want %v", in, got, want)
		}
	}
}
