// Package g2p converts Romanian words into pronunciations on the phone set
// of the CMU Sphinx en-us acoustic model (ARPAbet: AA AE AH AO AW AY B CH D
// DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z
// ZH), by rules of Romanian orthography, so that any word a flow designer
// writes becomes recognizable without a hand-made lexicon.
//
// Romanian spelling is close to phonemic; the rules cover the letters with
// context-dependent sounds (c, g before e/i, the ch/gh digraphs, the
// diphthongs ea, oa, ia, ie, iu, au, ai, ei, oi, ui, the non-syllabic final
// i, iotated initial e in the forms of "a fi" and the pronouns), and map
// the vowels with no English counterpart (ă, â/î) to the nearest English
// phones. Where two readings are likely (final i, â/î, o), Romanian returns
// them both as pronunciation variants.
package g2p

import (
	"strings"
	"unicode"
)

// Romanian returns the pronunciations of a Romanian word (lower case or
// not; cedilla ş/ţ accepted), most likely first, each a space-separated
// list of ARPAbet phones. Characters that are not Romanian letters are
// ignored; a word without Romanian letters gives nil.
func Romanian(word string) []string {
	w := []rune(normalize(word))
	if len(w) == 0 {
		return nil
	}
	base := convert(w, false, false)
	if len(base) == 0 {
		return nil // letters of other alphabets only
	}
	out := []string{strings.Join(base, " ")}
	add := func(p []string) {
		s := strings.Join(p, " ")
		for _, o := range out {
			if o == s {
				return
			}
		}
		if s != "" {
			out = append(out, s)
		}
	}
	add(convert(w, true, false)) // syllabic final i
	add(convert(w, false, true)) // â/î as AH, o as AO
	return out
}

// Undiacritized returns, for a word written without any Romanian
// diacritic (ă â î ș ț), the main pronunciation of each reading with one
// s read as ș or one t read as ț ("pasaport" gives the reading of
// "pașaport"): Romanian is often typed without diacritics, and its
// speakers say them. A word with a diacritic, or without s or t, gives
// nil.
func Undiacritized(word string) []string {
	w := []rune(normalize(word))
	for _, r := range w {
		if strings.ContainsRune("ăâîșț", r) {
			return nil
		}
	}
	var out []string
	for i, r := range w {
		var with rune
		switch r {
		case 's':
			with = 'ș'
		case 't':
			with = 'ț'
		default:
			continue
		}
		v := append([]rune(nil), w...)
		v[i] = with
		if p := convert(v, false, false); len(p) > 0 {
			out = append(out, strings.Join(p, " "))
		}
	}
	return out
}

func normalize(s string) string {
	s = strings.ToLower(s)
	s = strings.NewReplacer("ş", "ș", "ţ", "ț").Replace(s)
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isVowel(r rune) bool { return strings.ContainsRune("aăâeioîuy", r) }

// iotated are words whose initial e is read [je] (forms of "a fi", the
// personal pronouns).
var iotated = map[string]bool{"e": true, "este": true, "ești": true, "era": true, "erau": true, "eram": true,
	"erai": true, "erați": true, "eu": true, "el": true, "ea": true, "ei": true, "ele": true, "eram.": true}

// convert applies the rules; finalI keeps a final non-syllabic i as IY,
// alt picks the second choice for â/î and o.
func convert(w []rune, finalI, alt bool) []string {
	var p []string
	at := func(i int) rune {
		if i >= 0 && i < len(w) {
			return w[i]
		}
		return 0
	}
	n := len(w)
	for i := 0; i < n; i++ {
		c, next := w[i], at(i+1)
		switch c {
		case 'a':
			switch {
			case next == 'i' && !(i+2 < n && isVowel(at(i+2))):
				p = append(p, "AY")
				i++
			case next == 'u' && !(i+2 < n && isVowel(at(i+2))):
				p = append(p, "AW")
				i++
			default:
				p = append(p, "AA")
			}
		case 'ă':
			p = append(p, "AH")
		case 'â', 'î':
			if alt {
				p = append(p, "AH")
			} else {
				p = append(p, "IH")
			}
		case 'e':
			if i == 0 && iotated[string(w)] {
				p = append(p, "Y")
			}
			switch {
			case next == 'a':
				// "ea" is a rising diphthong [ea̯]~[ja]
				p = append(p, "Y", "AA")
				i++
				if at(i+1) == 'u' {
					p = append(p, "W")
					i++
				}
			case next == 'i' && !(i+2 < n && isVowel(at(i+2))):
				p = append(p, "EY")
				i++
			case next == 'u' && i+2 >= n:
				p = append(p, "EH", "W")
				i++
			default:
				p = append(p, "EH")
			}
		case 'i':
			prevC := i > 0 && !isVowel(at(i-1))
			switch {
			case i == n-1 && prevC && !finalI && n > 2 && at(i-1) != 'i':
				// non-syllabic final i (pomi, cinci): palatalisation only
			case isVowel(next) && next != 'i':
				p = append(p, "Y")
			case i > 0 && isVowel(at(i-1)):
				p = append(p, "Y")
			default:
				p = append(p, "IY")
			}
		case 'o':
			switch {
			case next == 'a':
				p = append(p, "W", "AA")
				i++
			case next == 'i' && !(i+2 < n && isVowel(at(i+2))):
				p = append(p, "OY")
				i++
			case next == 'u' && !(i+2 < n && isVowel(at(i+2))):
				p = append(p, "OW")
				i++
			case alt:
				p = append(p, "AO")
			default:
				p = append(p, "OW")
			}
		case 'u':
			switch {
			case next == 'i' && !(i+2 < n && isVowel(at(i+2))):
				p = append(p, "UW", "IY")
				i++
			case isVowel(next) && i > 0 && isVowel(at(i-1)):
				p = append(p, "W")
			case (next == 'a' || next == 'ă') && i > 0:
				p = append(p, "UW", "W")
			default:
				p = append(p, "UW")
			}
		case 'y':
			p = append(p, "IY")
		case 'c':
			switch {
			case next == 'h' && (at(i+2) == 'e' || at(i+2) == 'i'):
				p = append(p, "K")
				i++
			case next == 'e' || next == 'i':
				p = append(p, "CH")
				i = skipGlideI(w, i, finalI)
			default:
				p = append(p, "K")
			}
		case 'g':
			switch {
			case next == 'h' && (at(i+2) == 'e' || at(i+2) == 'i'):
				p = append(p, "G")
				i++
			case next == 'e' || next == 'i':
				p = append(p, "JH")
				i = skipGlideI(w, i, finalI)
			default:
				p = append(p, "G")
			}
		case 'n':
			if next == 'c' || next == 'g' {
				if nn := at(i + 2); nn != 'e' && nn != 'i' {
					p = append(p, "NG")
					break
				}
			}
			p = append(p, "N")
		case 'x':
			p = append(p, "K", "S")
		case 'ș':
			p = append(p, "SH")
		case 'ț':
			p = append(p, "T", "S")
		case 'j':
			p = append(p, "ZH")
		case 'h':
			p = append(p, "HH")
		case 'q', 'k':
			p = append(p, "K")
		case 'w':
			p = append(p, "W")
		case 'b', 'd', 'f', 'l', 'm', 'p', 'r', 's', 't', 'v', 'z':
			p = append(p, strings.ToUpper(string(c)))
		}
	}
	return p
}

// skipGlideI handles the i after c/g: "ci"/"gi" before a vowel is only a
// spelling of the consonant (ciorbă, giulgiu), and a final "ci"/"gi" is
// non-syllabic (cinci) unless finalI. It returns the index of the last
// consumed letter.
func skipGlideI(w []rune, i int, finalI bool) int {
	if i+1 < len(w) && w[i+1] == 'i' {
		if i+2 < len(w) && isVowel(w[i+2]) && w[i+2] != 'i' {
			return i + 1
		}
		if i+2 == len(w) && !finalI && len(w) > 2 {
			return i + 1
		}
	}
	return i
}
