package sphinx

import (
	"os"
	"slices"
	"strings"
)

// cmuDict is the CMU pronouncing dictionary (about 135,000 entries) as
// its file's text and the start of each entry, sorted by word: 3.8 MB
// in memory, where a map of the words to their pronunciations took 16 MB
// of Go heap. A word's variants ("word", "word(2)") keep the file's
// order.
type cmuDict struct {
	text    string
	entries []uint32 // offsets of the lines in text, sorted by word
}

// readCMUDict reads the dictionary at path. A line is a word (with an
// optional "(N)" variant mark) and its phones, separated by a space;
// other lines are skipped.
func readCMUDict(path string) (*cmuDict, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := &cmuDict{text: string(b), entries: make([]uint32, 0, 140000)}
	for off := 0; off < len(d.text); {
		end := strings.IndexByte(d.text[off:], '\n')
		if end < 0 {
			end = len(d.text) - off
		}
		if _, _, ok := d.entry(uint32(off)); ok {
			d.entries = append(d.entries, uint32(off))
		}
		off += end + 1
	}
	slices.SortStableFunc(d.entries, func(a, b uint32) int {
		wa, _, _ := d.entry(a)
		wb, _, _ := d.entry(b)
		return strings.Compare(wa, wb)
	})
	return d, nil
}

// entry is the word (without its variant mark) and the pronunciation of
// the line at off; ok is false for a line without a space.
func (d *cmuDict) entry(off uint32) (word, pron string, ok bool) {
	line := d.text[off:]
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	word, pron, ok = strings.Cut(line, " ")
	if i := strings.IndexByte(word, '('); i > 0 {
		word = word[:i]
	}
	return word, strings.TrimSpace(pron), ok
}

// lookup returns word's pronunciations, in the file's order (nil when
// the word is not in the dictionary).
func (d *cmuDict) lookup(word string) []string {
	i, _ := slices.BinarySearchFunc(d.entries, word, func(off uint32, w string) int {
		e, _, _ := d.entry(off)
		return strings.Compare(e, w)
	})
	var out []string
	for ; i < len(d.entries); i++ {
		e, pron, _ := d.entry(d.entries[i])
		if e != word {
			break
		}
		out = append(out, pron)
	}
	return out
}

// each calls f with every pronunciation in the dictionary.
func (d *cmuDict) each(f func(pron string)) {
	for _, off := range d.entries {
		_, pron, _ := d.entry(off)
		f(pron)
	}
}
