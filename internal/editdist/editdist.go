// Package editdist is the engine's one edit distance: the Levenshtein
// distance between two sequences (bytes of a word, words of a sentence),
// used to suggest the flow API name a designer meant, to match a caller's
// misspelt or misheard word to the knowledge base's vocabulary, and to
// count a recognizer's word errors.
package editdist

// Distance returns the number of insertions, deletions and substitutions
// of one element that turn a into b. It allocates two rows of the shorter
// sequence's length.
func Distance[E comparable](a, b []E) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Strings is Distance over the bytes of a and b (the callers' words are
// folded to ASCII first, or compared byte for byte on purpose).
func Strings(a, b string) int { return Distance([]byte(a), []byte(b)) }
