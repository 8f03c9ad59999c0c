// Package sphinx is the embedded speech recognizer: CMU pocketsphinx
// (Debian's libpocketsphinx, 5prealpha API, through cgo) with the en-us
// acoustic model, restricted by grammars built from what the flow asks
// (speech.Grammar: options and their synonyms, yes/no, digits).
//
// For each grammar the recognizer writes a JSGF grammar and a dictionary
// on the fly: English words take their pronunciations from the model's
// CMU dictionary; Romanian words (and English words missing from it) get
// theirs from the rule-based grapheme-to-phoneme conversion of speech/g2p,
// onto the same phone set, so no hand-made lexicon is needed.
//
// Decoders are expensive to create (the acoustic model is loaded for each,
// about 20 ms and 7.6 MB), so the Recognizer keeps idle decoders in a pool
// per language and rate and reuses them; a decoder remembers the grammars
// and words it has seen, so a repeated question costs nothing to set up.
// A decoder serves one stream at a time.
//
// Telephone audio (8 kHz) is upsampled to the model's 16 kHz by default
// (FrontEnd8k); the alternative runs the front end at 8 kHz with a
// 256-point FFT. docs/speech.md has the accuracy of both.
//
// A stream dithers its own audio from a fixed seed and starts from a fixed
// cepstral mean, so the same audio decodes alike on any pooled decoder.
// A digit grammar at 16 kHz is decoded a second time at Finish with the
// utterance's own cepstral mean (measured far better for digits on
// wideband audio; docs/speech.md has what else was tried for digits).
package sphinx

/*
#cgo pkg-config: pocketsphinx
#include <stdlib.h>
#include <pocketsphinx.h>
#include <sphinxbase/err.h>
#include <sphinxbase/logmath.h>
#include <sphinxbase/feat.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/cmd_ln.h>
#include <time.h>

static ps_decoder_t *newDecoder(int argc, char **argv) {
	cmd_ln_t *cfg = cmd_ln_parse_r(NULL, ps_args(), argc, argv, FALSE);
	if (cfg == NULL) return NULL;
	ps_decoder_t *ps = ps_init(cfg);
	cmd_ln_free_r(cfg);
	return ps;
}

static double toProb(ps_decoder_t *ps, int32 lp) {
	return logmath_exp(ps_get_logmath(ps), lp);
}

static void quiet(void) { err_set_logfp(NULL); }

// setAllphone adds the phone-loop search name with its own beams (0: the
// decoder's) and phone model (an ARPA file; NULL: none, a flat loop): a
// search reads -beam and -pbeam when it is made, so they are set in the
// shared configuration for that moment only.
static int setAllphone(ps_decoder_t *ps, const char *name, double beam, double pbeam, const char *lm) {
	cmd_ln_t *c = ps_get_config(ps);
	double b0 = cmd_ln_float_r(c, "-beam"), p0 = cmd_ln_float_r(c, "-pbeam");
	if (beam > 0) cmd_ln_set_float_r(c, "-beam", beam);
	if (pbeam > 0) cmd_ln_set_float_r(c, "-pbeam", pbeam);
	int rc = lm ? ps_set_allphone_file(ps, name, lm) : ps_set_allphone(ps, name, NULL);
	cmd_ln_set_float_r(c, "-beam", b0);
	cmd_ln_set_float_r(c, "-pbeam", p0);
	return rc;
}

// decodeAll decodes audio then pad in the started utterance, ends it, and
// returns the CPU time this thread spent on it (ns).
static long long decodeAll(ps_decoder_t *ps, int16 *audio, size_t n, int16 *pad, size_t m) {
	struct timespec a, b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	ps_process_raw(ps, audio, n, 0, 0);
	ps_process_raw(ps, pad, m, 0, 0);
	ps_end_utt(ps);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	return (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

// The live cepstral mean: saved when the decoder is made, restored before
// each utterance (cmn_live_set also resets the running sums).
static cmn_t *cmnOf(ps_decoder_t *ps) {
	feat_t *f = ps_get_feat(ps);
	return f == NULL ? NULL : f->cmn_struct;
}
static int cmnLen(ps_decoder_t *ps) {
	cmn_t *c = cmnOf(ps);
	return c == NULL ? 0 : c->veclen;
}
static void cmnGet(ps_decoder_t *ps, float *v) { cmn_live_get(cmnOf(ps), v); }
static void cmnSet(ps_decoder_t *ps, float *v) { cmn_live_set(cmnOf(ps), v); }
// cmnSetWeight is cmn_live_set with the start value counting as k frames
// (cmn_live_set counts it as CMN_WIN), so the sums soon hold mostly this
// utterance's frames.
static void cmnSetWeight(ps_decoder_t *ps, float *v, int k) {
	cmn_t *c = cmnOf(ps);
	cmn_live_set(c, v);
	for (int i = 0; i < c->veclen; i++) c->sum[i] = v[i] * k;
	c->nframe = k;
}
// cmnStats copies the live sums and returns the number of frames they
// hold.
static int cmnStats(ps_decoder_t *ps, float *sum) {
	cmn_t *c = cmnOf(ps);
	for (int i = 0; i < c->veclen; i++) sum[i] = c->sum[i];
	return c->nframe;
}
*/
import "C"

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/g2p"
)

// DefaultModelDir is where Debian's pocketsphinx-en-us installs the model.
const DefaultModelDir = "/usr/share/pocketsphinx/model/en-us"

// FrontEnd8k says how 8 kHz audio reaches the 16 kHz model.
type FrontEnd8k int

const (
	// Upsample8k resamples 8 kHz frames to 16 kHz (audio.Resampler) and
	// decodes with the model's own front end. The default: measured
	// better (docs/speech.md).
	Upsample8k FrontEnd8k = iota
	// Native8k runs the front end at 8 kHz (-samprate 8000 -nfft 256).
	Native8k
)

// Options configure a Recognizer.
type Options struct {
	ModelDir string     // folder with en-us/ and cmudict-en-us.dict; "" = DefaultModelDir
	Front8k  FrontEnd8k // 8 kHz handling
	// EnglishInRomanian adds, for a word of a Romanian grammar that is in
	// the CMU dictionary, its English pronunciations as variants (callers
	// say "English", "operator", "OK" the English way).
	EnglishInRomanian bool
	// Args are extra pocketsphinx arguments ("-beam", "1e-60", ...),
	// applied last.
	Args []string
	// MaxIdle bounds the idle decoders kept per language and rate
	// (0 = 8).
	MaxIdle int
	// AdaptCMN keeps the cepstral mean a decoder learnt from the
	// utterances it decoded before (pocketsphinx's own behaviour). Off
	// (the default), every stream starts from the model's start value:
	// on a phone line consecutive utterances come from different callers
	// and lines, and a result must not depend on which pooled decoder
	// served it (measured: docs/speech.md).
	AdaptCMN bool
	// PlainDigits turns off what digit grammars get beyond the other
	// grammars (at 16 kHz a second pass with the utterance's own
	// cepstral mean, see uttCMNWeight). For measuring it.
	PlainDigits bool
	// FoldDigits adds spectral folding to telephone audio for digit
	// grammars (see digitFold). Off: measured no better.
	FoldDigits bool
	// PlainSpelling reads a Romanian word written without diacritics
	// only as written. Otherwise its s and t may also be ș and ț (one at
	// a time): flows write "pasaportul" for "pașaportul" (they match
	// text without diacritics), callers say ș.
	PlainSpelling bool
	// NoConfidence skips the phone-loop pass that gives Result.Confidence
	// (it is then 0, "unknown"), saving its cost at Finish.
	NoConfidence bool
}

// Recognizer is the pocketsphinx speech.Recognizer. Safe for concurrent
// use.
type Recognizer struct {
	opts      Options
	dictErr   error
	dictOne   sync.Once
	cmudict   *cmuDict
	emptyDict string
	copies    map[string]string // see modelCopy; under mu

	mu    sync.Mutex
	idle  map[poolKey][]*decoder
	calls map[callKey]*callCMN // the cepstral mean each call's line taught
}

// callKey names a call's line as one decoder configuration hears it.
type callKey struct {
	call string
	key  poolKey
}

// callCMN is the cepstral mean after a call's last utterance.
type callCMN struct {
	mean []float32
	used time.Time
}

// Calls idle longer than callCMNTTL are forgotten; at most maxCallCMN are
// kept.
const (
	callCMNTTL = 30 * time.Minute
	maxCallCMN = 4096
)

var _ speech.Recognizer = (*Recognizer)(nil)

type poolKey struct {
	lang string
	rate int
}

var quietOnce sync.Once

// New returns a Recognizer; it checks that the model is there.
func New(opts Options) (*Recognizer, error) {
	if opts.ModelDir == "" {
		opts.ModelDir = DefaultModelDir
	}
	if opts.MaxIdle == 0 {
		opts.MaxIdle = 8
	}
	for _, f := range []string{"en-us/mdef", "cmudict-en-us.dict"} {
		if _, err := os.Stat(filepath.Join(opts.ModelDir, f)); err != nil {
			return nil, fmt.Errorf("%w: pocketsphinx model: %v (apt-get install pocketsphinx-en-us)", speech.ErrUnsupported, err)
		}
	}
	quietOnce.Do(func() { C.quiet() })
	return &Recognizer{opts: opts, idle: map[poolKey][]*decoder{}}, nil
}

// loadDict reads the CMU dictionary once (about 135,000 words).
func (r *Recognizer) loadDict() error {
	r.dictOne.Do(func() {
		r.cmudict, r.dictErr = readCMUDict(filepath.Join(r.opts.ModelDir, "cmudict-en-us.dict"))
		if r.dictErr != nil {
			return
		}
		// ps_init needs a dictionary file; the grammar words are added
		// to each decoder afterwards.
		tmp, err := os.CreateTemp("", "ivr-sphinx-*.dict")
		if err != nil {
			r.dictErr = err
			return
		}
		fmt.Fprintln(tmp, "sil SIL")
		tmp.Close()
		r.emptyDict = tmp.Name()
	})
	return r.dictErr
}

// Prepare loads now what the first utterances in langs at rate would
// otherwise wait for: the CMU dictionary (about 0.1 s) and an idle
// decoder for each language (about 20 ms each, the acoustic model). ivrd
// calls it at start, so the first caller is not kept waiting and a broken
// model shows in the start log. Call it before the first stream: decoders
// must not be created concurrently (see ivr.SerialStreams).
func (r *Recognizer) Prepare(rate int, langs ...string) error {
	if err := speech.CheckRate(rate); err != nil {
		return err
	}
	if err := r.loadDict(); err != nil {
		return fmt.Errorf("%w: CMU dictionary: %v", speech.ErrEngine, err)
	}
	for _, l := range langs {
		k := poolKey{l, rate}
		r.mu.Lock()
		idle := len(r.idle[k])
		r.mu.Unlock()
		if idle > 0 {
			continue
		}
		d, err := r.newDecoder(rate)
		if err != nil {
			return err
		}
		r.put(k, d)
	}
	return nil
}

// Pronunciations returns the pronunciations the recognizer uses for word
// in lang.
func (r *Recognizer) Pronunciations(lang, word string) []string {
	if err := r.loadDict(); err != nil {
		return g2p.Romanian(word)
	}
	var out []string
	if lang == "en" {
		out = append(out, r.cmudict.lookup(word)...)
		if len(out) > 0 {
			return out
		}
		return g2p.Romanian(word) // a rough guess for unknown English words
	}
	out = g2p.Romanian(word)
	if !r.opts.PlainSpelling {
		out = appendNew(out, g2p.Undiacritized(word)...)
	}
	out = appendNew(out, telephoneVariants[word]...)
	if r.opts.EnglishInRomanian {
		out = append(out, r.cmudict.lookup(word)...)
	}
	return out
}

// telephoneVariants are extra pronunciations of short Romanian words
// whose rule-based one loses to a longer phrase of the same grammar on
// telephone audio. "nu" is a nasal and a vowel, 340 ms: through G.711, a
// concealed or shortened packet in its first 150 ms had the yes/no
// grammar hear "sigur" (S IY G UW R) with confidence 0.5 to 0.87 — 24 of
// 152 perturbed renderings of espeak's "nu" (8 leading silences × every
// other 20 ms frame dropped), and on one CI machine the unperturbed call.
// A labial or long nasal onset (M UW: n and m differ only in formant
// transitions the telephone band blurs; N N UW: an emphatic "nnu") and a
// neutral-vowel onset (AH N UW) took that to 2 of 152, with "da",
// "sigur" and "corect" still 0 wrong under the same perturbations; the
// Romanian yes/no test set (20 answers, every voice) went from 90 to 95 %
// on µ-law and A-law, 85 to 95 % with 20 dB noise and 55 to 65 % with
// 10 dB, the menu unchanged (BenchmarkAccuracy, SPHINX_LANG=ro).
var telephoneVariants = map[string][]string{
	"nu": {"M UW", "N N UW", "AH N UW"},
}

// appendNew appends to l the strings of more it does not hold yet.
func appendNew(l []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(l, m) {
			l = append(l, m)
		}
	}
	return l
}

// digitFold is the gain of the mirror image that digit grammars add to
// telephone audio upsampled to 16 kHz (spectral folding: the 1.2-3.9 kHz
// band reappears at 4.1-6.8 kHz, where the wideband model looks for the
// fricatives of "șase", "șapte", "zero", "six", "seven" and finds nothing
// in 8 kHz audio). Measured on the digits development set, G.711: 0.3
// took Romanian from 7 % to 23 % and English from 13 % to 20 %; 0.15 and
// 0.5 less, 1 (plain zero-insertion) far less. But on the test set
// (G.711 and 20 dB noise, other voices) it cost Romanian 16 to 8 digit
// strings of 64 and English 27 to 26: off unless Options.FoldDigits.
const digitFold = 0.3

// foldCMN is the cepstral mean of folded telephone speech (digitFold),
// measured like telephoneCMN; folding without it (the telephone mean)
// recognized nothing.
const foldCMN = "62.47,1.87,3.64,15.36,10.97,-33.65,13.89,-18.20,-15.74,9.42,-21.64,11.73,-9.90"

// uttCMNWeight is the weight (in 10 ms frames) of the model's start value
// when a digit utterance at 16 kHz is decoded a second time with its own
// cepstral mean: 100 frames, so a 2 s utterance counts twice as much as
// the start value.
const uttCMNWeight = 100

// telephoneCMN is the cepstral mean of telephone-band speech upsampled to
// 16 kHz, measured (pocketsphinx's live CMN after the speech test set,
// G.711 at 8 kHz); the model's own -cmninit (41.00,-5.29,...) is that of
// wideband speech, and a fresh decoder starting from it misrecognizes its
// first utterances until its mean has adapted.
const telephoneCMN = "53.76,31.55,-34.13,49.46,-19.11,-24.85,19.11,-31.26,2.06,-6.42,-12.84,9.52,-15.88"

// modelCopy returns a folder that is the acoustic model with some
// front-end parameters of its feat.params replaced (feat.params wins over
// the command line, so this is the only way to change them). The folder
// links the model's other files and is made once per Recognizer and name.
func (r *Recognizer) modelCopy(name string, set map[string]string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.copies[name]; ok {
		return d, nil
	}
	src := filepath.Join(r.opts.ModelDir, "en-us")
	dir, err := os.MkdirTemp("", "ivr-sphinx-"+name+"-")
	if err != nil {
		return "", err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.Name() == "feat.params" {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				return "", err
			}
			var out []string
			for _, l := range strings.Split(string(b), "\n") {
				if k, _, ok := strings.Cut(l, " "); ok {
					if v, ok := set[k]; ok {
						l = k + " " + v
					}
				}
				out = append(out, l)
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(strings.Join(out, "\n")), 0o644); err != nil {
				return "", err
			}
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return "", err
		}
	}
	if r.copies == nil {
		r.copies = map[string]string{}
	}
	r.copies[name] = dir
	return dir, nil
}

// decoder is one pocketsphinx decoder with what it has learnt.
type decoder struct {
	ps       *C.ps_decoder_t
	tokens   map[string]string // "lang:word" -> dictionary token
	words    map[string]string // token -> word
	searches map[uint64]string // grammar hash -> search name
	active   string            // the grammar search in use
	loops    map[string]bool   // the phone-loop searches set up
	cmn      []float32         // the live cepstral mean it started with
	foldCMN  []float32         // the start mean of folded telephone audio
}

func (r *Recognizer) newDecoder(rate int) (*decoder, error) {
	if err := r.loadDict(); err != nil {
		return nil, fmt.Errorf("%w: CMU dictionary: %v", speech.ErrEngine, err)
	}
	hmm := filepath.Join(r.opts.ModelDir, "en-us")
	if rate == 8000 {
		var err error
		if r.opts.Front8k == Native8k {
			hmm, err = r.modelCopy("8k", map[string]string{"-upperf": "3500"})
		} else {
			hmm, err = r.modelCopy("telephone", map[string]string{"-cmninit": telephoneCMN})
		}
		if err != nil {
			return nil, fmt.Errorf("%w: telephone model copy: %v", speech.ErrEngine, err)
		}
	}
	args := []string{
		"-hmm", hmm,
		"-dict", r.emptyDict,
		"-cmn", "live",
		"-bestpath", "yes",
		"-remove_noise", "no", // measured: better sentence accuracy on G.711 audio
		// No "-dither yes": its random numbers come from one generator
		// for the whole process, so a result depended on what every
		// other decoder had decoded before (measured: the same digit
		// strings scored up to 2 of 16 apart between runs), and
		// concurrent calls raced on it. Each stream dithers its own
		// audio the same way instead (stream.ditherIn).
		// A stronger word insertion penalty than the default 0.65:
		// fewer digits inserted in digit strings (measured: free-length
		// digits 6 % -> 25 % in Romanian, menus unchanged; 1e-4 is far
		// too strong).
		"-wip", "0.05",
		// Wider beams than pocketsphinx's (1e-48, 7e-29, 1e-48) and a
		// phone insertion bonus (-pip 5, default 1): with the defaults
		// the right long word was pruned, or its first syllables
		// were taken for silence ("pașaportul" heard as silence +
		// "contul"), and so a result flipped with any inaudible change
		// of the audio, the codec's among them. Measured on the
		// development voices of the test set (docs/speech.md has each
		// step). Beams of 1e-80 scored about a point more and cost
		// twice as much again: these cost twice main's.
		"-beam", "1e-60", "-wbeam", "1e-40", "-pbeam", "1e-60",
		"-pip", "5",
		// The confidence's phone loop: context-independent phones
		// (measured: docs/speech.md).
		"-allphone_ci", "yes",
	}
	args = append(args, r.opts.Args...)
	// $IVR_SPHINX_LOG names a file for pocketsphinx's own log (debugging).
	if f := os.Getenv("IVR_SPHINX_LOG"); f != "" {
		args = append(args, "-logfn", f)
	} else {
		args = append(args, "-logfn", "/dev/null")
	}
	if rate == 8000 && r.opts.Front8k == Native8k {
		args = append(args, "-samprate", "8000", "-nfft", "256")
	}
	argv := make([]*C.char, len(args))
	for i, a := range args {
		argv[i] = C.CString(a)
		defer C.free(unsafe.Pointer(argv[i]))
	}
	ps := C.newDecoder(C.int(len(args)), &argv[0])
	if ps == nil {
		return nil, fmt.Errorf("%w: pocketsphinx could not load the model in %s", speech.ErrEngine, r.opts.ModelDir)
	}
	d := &decoder{ps: ps, tokens: map[string]string{}, words: map[string]string{}, searches: map[uint64]string{}}
	if n := int(C.cmnLen(ps)); n > 0 && !r.opts.AdaptCMN {
		d.cmn = make([]float32, n)
		C.cmnGet(ps, (*C.float)(unsafe.Pointer(&d.cmn[0])))
		if rate == 8000 && r.opts.Front8k == Upsample8k {
			d.foldCMN = parseMean(foldCMN, n)
		}
	}
	return d, nil
}

// parseMean reads a comma-separated mean of n values.
func parseMean(s string, n int) []float32 {
	m := make([]float32, n)
	for i, f := range strings.Split(s, ",") {
		if i < n {
			fmt.Sscan(f, &m[i])
		}
	}
	return m
}

// startUtt starts an utterance from the cepstral mean mean, or from the
// decoder's initial one when mean is nil (unless Options.AdaptCMN).
func (d *decoder) startUtt(mean []float32) bool {
	if mean == nil || (d.cmn != nil && len(mean) != len(d.cmn)) {
		mean = d.cmn
	}
	if mean != nil {
		C.cmnSet(d.ps, (*C.float)(unsafe.Pointer(&mean[0])))
	}
	return C.ps_start_utt(d.ps) >= 0
}

// callMean returns the cepstral mean the call's earlier utterances taught
// (nil: none).
func (r *Recognizer) callMean(call string, k poolKey) []float32 {
	if call == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.calls[callKey{call, k}]; c != nil {
		return c.mean
	}
	return nil
}

// learn keeps the decoder's cepstral mean after an utterance of call.
func (r *Recognizer) learn(call string, k poolKey, d *decoder) {
	if call == "" || d.cmn == nil {
		return
	}
	mean := d.mean()
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[callKey]*callCMN{}
	}
	if len(r.calls) >= maxCallCMN {
		var oldest callKey
		var at time.Time
		for ck, c := range r.calls {
			if now.Sub(c.used) > callCMNTTL {
				delete(r.calls, ck)
			} else if at.IsZero() || c.used.Before(at) {
				oldest, at = ck, c.used
			}
		}
		if len(r.calls) >= maxCallCMN {
			delete(r.calls, oldest)
		}
	}
	r.calls[callKey{call, k}] = &callCMN{mean: mean, used: now}
}

// mean returns the live cepstral mean.
func (d *decoder) mean() []float32 {
	n := int(C.cmnLen(d.ps))
	if n == 0 {
		return nil
	}
	m := make([]float32, n)
	C.cmnGet(d.ps, (*C.float)(unsafe.Pointer(&m[0])))
	return m
}

func (d *decoder) free() {
	C.ps_free(d.ps)
	d.ps = nil
}

// token returns the dictionary token of word in lang, adding it with
// prons (a word has a token per language: its pronunciations differ).
func (d *decoder) token(lang, word string, prons []string) (string, error) {
	key := lang + ":" + word
	if t, ok := d.tokens[key]; ok {
		return t, nil
	}
	t := fmt.Sprintf("w%d", len(d.tokens))
	for i, p := range prons {
		name := t
		if i > 0 {
			name = fmt.Sprintf("%s(%d)", t, i+1)
		}
		cn, cp := C.CString(name), C.CString(p)
		rc := C.ps_add_word(d.ps, cn, cp, 1)
		C.free(unsafe.Pointer(cn))
		C.free(unsafe.Pointer(cp))
		if rc < 0 {
			return "", fmt.Errorf("%w: pocketsphinx rejected the pronunciation %q of %q", speech.ErrEngine, p, word)
		}
	}
	d.tokens[key], d.words[t] = t, word
	return t, nil
}

// useGrammar makes g the decoder's active search.
func (r *Recognizer) useGrammar(d *decoder, lang string, g *speech.Grammar) error {
	var jsgf strings.Builder
	tok := func(lang, w string) (string, error) {
		prons := r.Pronunciations(lang, w)
		if len(prons) == 0 {
			return "", fmt.Errorf("%w: no pronunciation for %q", speech.ErrUnsupported, w)
		}
		return d.token(lang, w, prons)
	}
	jsgf.WriteString("#JSGF V1.0;\ngrammar g;\n")
	jsgf.WriteString("public <s> = ")
	alts := 0
	for _, p := range g.Phrases {
		pl := lang
		if p.Lang == "ro" || p.Lang == "en" {
			pl = p.Lang
		}
		for _, say := range p.Say {
			words := strings.Fields(speech.NormalizeText(say))
			if len(words) == 0 {
				continue
			}
			if alts > 0 {
				jsgf.WriteString(" | ")
			}
			alts++
			jsgf.WriteString("(")
			for i, w := range words {
				t, err := tok(pl, w)
				if err != nil {
					return err
				}
				if i > 0 {
					jsgf.WriteByte(' ')
				}
				jsgf.WriteString(t)
			}
			jsgf.WriteString(")")
		}
	}
	if g.Digits > 0 {
		if alts > 0 {
			jsgf.WriteString(" | ")
		}
		alts++
		lo := max(1, min(g.MinDigits, g.Digits))
		for i := 0; i < g.Digits; i++ {
			if i > 0 {
				jsgf.WriteByte(' ')
			}
			if i < lo {
				jsgf.WriteString("<digit>")
			} else {
				jsgf.WriteString("[<digit>]")
			}
		}
	}
	if alts == 0 {
		return fmt.Errorf("%w: empty grammar", speech.ErrUnsupported)
	}
	jsgf.WriteString(";\n")
	if g.Digits > 0 {
		jsgf.WriteString("<digit> = ")
		for i, w := range speech.DigitWords(lang) {
			t, err := tok(lang, w)
			if err != nil {
				return err
			}
			if i > 0 {
				jsgf.WriteString(" | ")
			}
			jsgf.WriteString(t)
		}
		jsgf.WriteString(";\n")
	}
	h := fnv.New64a()
	h.Write([]byte(jsgf.String()))
	key := h.Sum64()
	name, ok := d.searches[key]
	if !ok {
		if len(d.searches) >= 64 { // forget old grammars
			for k, n := range d.searches {
				cn := C.CString(n)
				C.ps_unset_search(d.ps, cn)
				C.free(unsafe.Pointer(cn))
				delete(d.searches, k)
			}
		}
		name = fmt.Sprintf("g%x", key)
		cn, cg := C.CString(name), C.CString(jsgf.String())
		rc := C.ps_set_jsgf_string(d.ps, cn, cg)
		C.free(unsafe.Pointer(cn))
		C.free(unsafe.Pointer(cg))
		if rc < 0 {
			return fmt.Errorf("%w: pocketsphinx rejected the grammar:\n%s", speech.ErrEngine, jsgf.String())
		}
		d.searches[key] = name
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	if C.ps_set_search(d.ps, cn) < 0 {
		return fmt.Errorf("%w: pocketsphinx could not switch to grammar %s", speech.ErrEngine, name)
	}
	d.active = name
	if !ok {
		// Measured: the first utterance decoded with a freshly built
		// grammar search goes wrong far more often than later ones
		// (pocketsphinx settles some state only at the search's first
		// end of utterance), so a new search first decodes half a
		// second of faint noise.
		warm := make([]int16, 8000)
		for i := range warm {
			warm[i] = int16((i*7919)%61 - 30)
		}
		C.ps_set_search(d.ps, cn)
		d.startUtt(nil)
		C.ps_process_raw(d.ps, (*C.int16)(unsafe.Pointer(&warm[0])), C.size_t(len(warm)), 0, 0)
		C.ps_end_utt(d.ps)
	}
	return nil
}

func (r *Recognizer) get(k poolKey) (*decoder, error) {
	r.mu.Lock()
	if l := r.idle[k]; len(l) > 0 {
		d := l[len(l)-1]
		r.idle[k] = l[:len(l)-1]
		r.mu.Unlock()
		return d, nil
	}
	r.mu.Unlock()
	return r.newDecoder(k.rate)
}

func (r *Recognizer) put(k poolKey, d *decoder) {
	r.mu.Lock()
	if len(r.idle[k]) < r.opts.MaxIdle {
		r.idle[k] = append(r.idle[k], d)
		d = nil
	}
	r.mu.Unlock()
	if d != nil {
		d.free()
	}
}

// Close frees the idle decoders. Streams still open free theirs when they
// finish.
func (r *Recognizer) Close() error {
	r.mu.Lock()
	idle := r.idle
	r.idle = map[poolKey][]*decoder{}
	r.mu.Unlock()
	for _, l := range idle {
		for _, d := range l {
			d.free()
		}
	}
	if r.emptyDict != "" {
		os.Remove(r.emptyDict)
	}
	r.mu.Lock()
	for _, d := range r.copies {
		os.RemoveAll(d)
	}
	r.copies = nil
	r.mu.Unlock()
	return nil
}

// NewStream implements speech.Recognizer. A grammar is required:
// pocketsphinx's open-vocabulary recognition is not usable on this line.
func (r *Recognizer) NewStream(ctx context.Context, o speech.StreamOptions) (speech.Stream, error) {
	if err := speech.CheckRate(o.Rate); err != nil {
		return nil, err
	}
	if o.Lang != "ro" && o.Lang != "en" {
		return nil, fmt.Errorf("%w: language %q (sphinx: ro, en)", speech.ErrUnsupported, o.Lang)
	}
	if o.Grammar == nil {
		return nil, fmt.Errorf("%w: sphinx recognizes only with a grammar", speech.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := poolKey{o.Lang, o.Rate}
	d, err := r.get(k)
	if err != nil {
		return nil, err
	}
	if err := r.useGrammar(d, o.Lang, o.Grammar); err != nil {
		r.put(k, d)
		return nil, err
	}
	s := &stream{r: r, ctx: ctx, key: k, d: d, lang: o.Lang, rate: o.Rate, decRate: o.Rate, g: o.Grammar, call: o.Call, rnd: ditherSeed}
	digits := o.Grammar.Digits > 0 && !r.opts.PlainDigits
	mean := r.callMean(o.Call, k) // nil: the decoder's start value
	if o.Rate == 8000 && r.opts.Front8k == Upsample8k {
		s.decRate = 16000
		s.rs, _ = audio.NewResampler(o.Rate, s.decRate)
		s.up = make([]int16, audio.SamplesPerFrame(s.decRate))
		if digits && d.foldCMN != nil && r.opts.FoldDigits {
			s.fold, mean = true, d.foldCMN
		}
	}
	if !d.startUtt(mean) {
		d.free()
		return nil, fmt.Errorf("%w: pocketsphinx could not start an utterance", speech.ErrEngine)
	}
	s.start, s.search = mean, d.active
	if !r.opts.NoConfidence {
		s.buf = make([]int16, 0, 4*s.decRate) // grows past 4 s
	}
	if digits && o.Rate == 16000 && d.cmn != nil {
		// Second pass at Finish: the first one collects the sums from
		// the start value counted as one frame.
		s.mean0 = d.mean()
		s.buf = make([]int16, 0, 4*s.decRate) // grows past 4 s
		C.cmnSetWeight(d.ps, (*C.float)(unsafe.Pointer(&s.mean0[0])), 1)
	}
	return s, nil
}

// stream is one utterance on one decoder.
type stream struct {
	r    *Recognizer
	ctx  context.Context
	key  poolKey
	d    *decoder // nil once finished
	lang string
	rate int
	// decRate is the decoder's rate (16000 for upsampled 8 kHz audio)
	decRate int
	g       *speech.Grammar
	call    string // StreamOptions.Call
	rs      *audio.Resampler
	up      []int16
	n       int       // frames written
	rnd     uint32    // the dither's state (xorshift32)
	fold    bool      // add the folded image (digitFold)
	nsamp   int       // decoder-rate samples written (the fold's phase)
	mean0   []float32 // the start mean, when Finish decodes a second time
	start   []float32 // the cepstral mean the utterance started from (nil: the decoder's)
	buf     []int16   // the decoder-rate audio, kept for the second pass and the phone loop
	search  string    // the grammar's search name

	mu      sync.Mutex
	partial speech.Result
	changed bool
}

// ditherIn adds pocketsphinx's "-dither" to in: +1 to a sample with
// probability 1/4. Digital silence (exact zeros) drives the live cepstral
// mean astray and the next words are misrecognized; the dither is the
// half-bit of noise real lines have. Each stream starts from the same
// seed, so a given audio is always decoded alike.
func (s *stream) ditherIn(in []int16) {
	x := s.rnd
	for i, v := range in {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if x>>30 == 0 && v < 32767 {
			in[i] = v + 1
		}
	}
	s.rnd = x
}

// ditherSeed starts every stream's dither.
const ditherSeed = 2463534242

// finishPad is the silence (ms) Finish feeds before ending the utterance.
const finishPad = 500

// partialEvery is how often (in frames) the partial hypothesis is read.
const partialEvery = 5

func (s *stream) Write(frame []int16) error {
	if s.d == nil {
		return speech.ErrClosed
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if err := speech.CheckFrame(frame, s.rate); err != nil {
		return err
	}
	var in []int16
	if s.rs != nil {
		in = s.up[:s.rs.Process(s.up, frame)]
	} else {
		in = append(s.up[:0], frame...) // the caller keeps frame
		s.up = in
	}
	if len(in) == 0 {
		return nil
	}
	if s.fold {
		// x[n]·(1 ± g) = x[n] + g·(-1)^n·x[n]: the spectrum plus its
		// mirror image about 4 kHz (in is s.up, ours to change).
		for i, v := range in {
			f := 1 + digitFold
			if (s.nsamp+i)%2 == 1 {
				f = 1 - digitFold
			}
			in[i] = int16(max(-32768, min(32767, float32(v)*float32(f))))
		}
		s.nsamp += len(in)
	}
	s.ditherIn(in)
	if s.buf != nil {
		s.buf = append(s.buf, in...)
	}
	if C.ps_process_raw(s.d.ps, (*C.int16)(unsafe.Pointer(&in[0])), C.size_t(len(in)), 0, 0) < 0 {
		return fmt.Errorf("%w: pocketsphinx failed to process audio", speech.ErrEngine)
	}
	s.n++
	if s.n%partialEvery == 0 {
		text := s.hyp()
		s.mu.Lock()
		if text != s.partial.Text {
			s.partial = speech.Result{Text: text, Tag: s.g.Match(s.lang, text)}
			s.changed = true
		}
		s.mu.Unlock()
	}
	return nil
}

func (s *stream) Partial() (speech.Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.changed
	s.changed = false
	return s.partial, c
}

// hyp returns the decoder's current best hypothesis as words.
func (s *stream) hyp() string {
	var score C.int32
	h := C.ps_get_hyp(s.d.ps, &score)
	if h == nil {
		return ""
	}
	return s.detokenize(C.GoString(h))
}

// detokenize maps dictionary tokens back to words.
func (s *stream) detokenize(h string) string {
	var out []string
	for _, t := range strings.Fields(h) {
		if w, ok := s.d.words[t]; ok {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}

func (s *stream) Finish(ctx context.Context) (speech.Result, error) {
	d := s.d
	if d == nil {
		return speech.Result{}, speech.ErrClosed
	}
	s.d = nil
	// pocketsphinx's own speech detector holds the last words until it
	// has seen enough silence after them; an endpointer may have cut the
	// audio sooner, so Finish supplies that silence.
	//
	// A digit utterance at 16 kHz is then decoded a second time from the
	// mean of its own frames (weighed with the start value): how the
	// model was trained (batch CMN), and measured far better for digits
	// on wideband audio, whose mean no fixed start value fits (at 8 kHz
	// the measured telephone means do). It costs a second decode.
	var mean []float32
	if s.mean0 != nil && len(s.buf) > 0 {
		mean = make([]float32, len(s.mean0))
		// sums = start value (1 frame) + this utterance's frames (past
		// 8 s pocketsphinx scales both down alike)
		nf := float32(C.cmnStats(d.ps, (*C.float)(unsafe.Pointer(&mean[0]))))
		k := float32(uttCMNWeight)
		for i := range mean {
			mean[i] = (mean[i] - s.mean0[i] + k*s.mean0[i]) / (nf - 1 + k)
		}
	}
	pad := make([]int16, s.decRate*finishPad/1000)
	s.ditherIn(pad)
	if s.ctx.Err() == nil && ctx.Err() == nil {
		C.ps_process_raw(d.ps, (*C.int16)(unsafe.Pointer(&pad[0])), C.size_t(len(pad)), 0, 0)
	}
	C.ps_end_utt(d.ps)
	if mean != nil && s.ctx.Err() == nil && ctx.Err() == nil {
		s.start = mean
		d.startUtt(mean)
		C.ps_process_raw(d.ps, (*C.int16)(unsafe.Pointer(&s.buf[0])), C.size_t(len(s.buf)), 0, 0)
		C.ps_process_raw(d.ps, (*C.int16)(unsafe.Pointer(&pad[0])), C.size_t(len(pad)), 0, 0)
		C.ps_end_utt(d.ps)
	}
	defer s.r.put(s.key, d)
	if err := s.ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	s.r.learn(s.call, s.key, d)
	s.d = d // detokenize uses it
	defer func() { s.d = nil }()
	res := speech.Result{Final: true, Text: s.hyp()}
	res.Tag = s.g.Match(s.lang, res.Text)
	var raw rawScores
	raw.gram, raw.frames, raw.word, raw.wordFrames = d.pathScores()
	// Word timings (10 ms feature frames, counted by pocketsphinx from
	// its first utterance: the first segment, silence included, marks
	// this one's start). No confidence: pocketsphinx's posterior is 1 for
	// every grammar path (measured: an out-of-grammar "banana" came out
	// as "cont" with 1.0), so Confidence stays 0, "unknown".
	base := C.int(-1)
	for seg := C.ps_seg_iter(d.ps); seg != nil; seg = C.ps_seg_next(seg) {
		w := C.GoString(C.ps_seg_word(seg))
		if i := strings.IndexByte(w, '('); i > 0 {
			w = w[:i]
		}
		var sf, ef C.int
		C.ps_seg_frames(seg, &sf, &ef)
		if base < 0 {
			base = sf
		}
		word, ok := d.words[w]
		if !ok {
			continue // silence and fillers
		}
		res.Words = append(res.Words, speech.Word{Text: word,
			Start: time.Duration(sf-base) * 10 * time.Millisecond, End: time.Duration(ef+1-base) * 10 * time.Millisecond})
	}

	// Alternatives from the lattice's n-best list.
	if res.Text != "" {
		seen := map[string]bool{res.Text: true}
		nb := C.ps_nbest(d.ps)
		for i := 0; nb != nil && i < 20 && len(res.Alternatives) < 3; i++ {
			nb = C.ps_nbest_next(nb)
			if nb == nil {
				break
			}
			var sc C.int32
			h := C.ps_nbest_hyp(nb, &sc)
			if h == nil {
				continue
			}
			text := s.detokenize(C.GoString(h))
			if text == "" || seen[text] {
				continue
			}
			seen[text] = true
			res.Alternatives = append(res.Alternatives, speech.Alternative{Text: text, Tag: s.g.Match(s.lang, text)})
		}
		if nb != nil {
			C.ps_nbest_free(nb)
		}
	}
	if s.buf != nil && res.Text != "" && s.ctx.Err() == nil && ctx.Err() == nil {
		raw.loop, raw.loopCPU, raw.loopOK = s.phoneLoop(d, pad, defaultLoop)
	}
	if rawHook != nil {
		rawHook(s, d, pad, raw)
	}
	if raw.loopOK {
		res.Confidence = confidence(raw)
	}
	return res, nil
}

// rawScores are what the confidence is computed from.
type rawScores struct {
	gram       int32         // acoustic score of the grammar's best path (logmath units)
	frames     int           // its length in 10 ms frames
	word       int32         // the part of gram in words (not silence or fillers)
	wordFrames int           // their frames
	loop       int32         // acoustic score of the best unconstrained phone sequence
	loopOK     bool          // loop was decoded
	loopCPU    time.Duration // the CPU time of the loop's decode
}

// rawHook, when set (tests), gets every utterance's raw scores, with the
// stream, its decoder (on the grammar's search) and the padding, for
// decoding more phone loops.
var rawHook func(s *stream, d *decoder, pad []int16, r rawScores)

// pathScore returns the acoustic score of the last utterance's best path
// (every segment, silences included) and its number of frames.
func (d *decoder) pathScore() (ascr int32, frames int) {
	ascr, frames, _, _ = d.pathScores()
	return ascr, frames
}

// pathScores is pathScore with the acoustic score and the frames of the
// words alone (silences and fillers left out).
func (d *decoder) pathScores() (ascr int32, frames int, wordAscr int32, wordFrames int) {
	first, last := C.int(-1), C.int(-1)
	for seg := C.ps_seg_iter(d.ps); seg != nil; seg = C.ps_seg_next(seg) {
		var a, l, b C.int32
		C.ps_seg_prob(seg, &a, &l, &b)
		ascr += int32(a)
		var sf, ef C.int
		C.ps_seg_frames(seg, &sf, &ef)
		if first < 0 {
			first = sf
		}
		last = ef
		w := C.GoString(C.ps_seg_word(seg))
		if i := strings.IndexByte(w, '('); i > 0 {
			w = w[:i]
		}
		if _, ok := d.words[w]; ok {
			wordAscr += int32(a)
			wordFrames += int(ef - sf + 1)
		}
	}
	return ascr, int(last - first + 1), wordAscr, wordFrames
}

// loopConf is a phone loop's search: its name, beams (0: the decoder's)
// and phone model.
type loopConf struct {
	name        string
	beam, pbeam float64
	lm          string // an ARPA phone model's file, "" for none (flat)
}

// defaultLoop is each decoder's unconstrained phone loop (pocketsphinx's
// allphone search, context-independent phones): the reference the
// grammar path is compared with for the confidence.
var defaultLoop = loopConf{name: "_phones"}

// phoneLoop decodes the utterance again with the phone loop l from the
// same cepstral mean, and returns its acoustic score and the CPU time of
// the decode; the decoder is left on the grammar's search.
func (s *stream) phoneLoop(d *decoder, pad []int16, l loopConf) (int32, time.Duration, bool) {
	cn := C.CString(l.name)
	defer C.free(unsafe.Pointer(cn))
	if !d.loops[l.name] {
		var lm *C.char
		if l.lm != "" {
			lm = C.CString(l.lm)
			defer C.free(unsafe.Pointer(lm))
		}
		if C.setAllphone(d.ps, cn, C.double(l.beam), C.double(l.pbeam), lm) < 0 {
			return 0, 0, false
		}
		if d.loops == nil {
			d.loops = map[string]bool{}
		}
		d.loops[l.name] = true
	}
	if C.ps_set_search(d.ps, cn) < 0 {
		return 0, 0, false
	}
	defer func() {
		cg := C.CString(s.search)
		C.ps_set_search(d.ps, cg)
		C.free(unsafe.Pointer(cg))
	}()
	if !d.startUtt(s.start) || len(s.buf) == 0 {
		return 0, 0, false
	}
	ns := C.decodeAll(d.ps, (*C.int16)(unsafe.Pointer(&s.buf[0])), C.size_t(len(s.buf)), (*C.int16)(unsafe.Pointer(&pad[0])), C.size_t(len(pad)))
	a, _ := d.pathScore()
	return a, time.Duration(ns), true
}

// confidence maps the raw scores to 0..1: the probability that the
// answer is right, from the log-likelihood ratio of the grammar's path
// against the unconstrained phone loop over the same audio, per frame of
// the words heard (a right answer's path is nearly as likely as the best
// phone sequence; a wrong one, or speech the grammar does not hold, is
// forced onto phones that fit worse).
func confidence(r rawScores) float64 {
	lr := float64(r.gram-r.loop) / float64(max(1, r.wordFrames))
	return 1 / (1 + math.Exp(-(confidenceA + confidenceB*lr)))
}

// The calibration of the confidence: a logistic fit of correctness
// (right tag = 1; wrong tag or out-of-grammar speech = 0) on the ratio
// (logmath units of the decoder, per 10 ms frame), over the development
// voices of the speech test set (945 answers: menu, yes/no, the escapes
// in the other language, out-of-grammar sentences, "hmm", a cough; G.711
// µ-law and A-law; Romanian and English fit alike), with the decoder's
// settings of newDecoder. On the held-out voices predicted and observed
// accuracy agree within 0.07 in every band of 0.2; the ratio separates
// right from wrong with an AUC of 0.86 (the n-best margin between the
// best path and the best with another tag: 0.60-0.65). Refit when the
// decoder's settings change. docs/speech.md has the tables.
const (
	confidenceA = 2.467
	confidenceB = 0.0996
)
