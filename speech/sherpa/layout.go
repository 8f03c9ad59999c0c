package sherpa

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrModelDir wraps the error for a model folder that is missing, empty,
// incomplete or ambiguous; the text names the file that is missing.
var ErrModelDir = errors.New("sherpa: model folder")

// Kinds of recognition model (Config.ASRKind, ASRModel.Kind).
const (
	KindAuto       = ""           // detect from the file names
	KindWhisper    = "whisper"    // encoder + decoder + tokens
	KindTransducer = "transducer" // encoder + decoder + joiner + tokens (icefall zipformer or NeMo, e.g. parakeet)
)

// ASRModel is a recognition model folder as DetectASR found it.
type ASRModel struct {
	Dir     string
	Kind    string // KindWhisper or KindTransducer
	Encoder string // paths
	Decoder string
	Joiner  string // transducer only
	Tokens  string
	// NeMo is true for a NeMo transducer (parakeet): its encoder carries
	// NeMo's metadata and sherpa-onnx is told the model type.
	NeMo bool
	// Languages a multilingual whisper model knows (its
	// all_language_codes); nil for an English-only whisper and for
	// transducers (whose language the folder name tells the operator).
	Languages []string
	// Multilingual is false for an English-only whisper (".en" models).
	Multilingual bool
}

// TTSModel is a synthesis model folder as DetectTTS found it.
type TTSModel struct {
	Dir      string
	Model    string // the .onnx
	Tokens   string
	Lexicon  string // lexicon.txt, when the folder has one
	DataDir  string // espeak-ng-data
	Rate     int    // Hz of the audio the model produces (its sample_rate)
	Speakers int    // n_speakers
	Language string // the model's "language" metadata, e.g. "Romanian"
}

// whisperMeta are the encoder metadata keys sherpa-onnx 1.12 reads for a
// whisper model (offline-whisper-model.cc); it exits the process when one
// is missing.
var whisperMeta = []string{"n_mels", "n_text_layer", "n_text_ctx", "n_text_state", "n_vocab",
	"sot", "eot", "blank_id", "translate", "transcribe", "is_multilingual", "no_timestamps",
	"no_speech", "sot_sequence"}

// whisperMultiMeta are the extra keys of a multilingual whisper.
var whisperMultiMeta = []string{"all_language_tokens", "all_language_codes"}

// nemoMeta are the encoder keys of a NeMo transducer; icefallDecoderMeta
// the decoder keys of an icefall (zipformer) transducer.
var (
	nemoMeta           = []string{"vocab_size", "subsampling_factor", "pred_rnn_layers", "pred_hidden"}
	icefallDecoderMeta = []string{"vocab_size", "context_size"}
)

// vitsMeta are the keys sherpa-onnx reads from a VITS/piper model
// (offline-tts-vits-model.cc) without a default.
var vitsMeta = []string{"sample_rate", "n_speakers", "language", "comment"}

// listDir returns the regular files and the sub-folders of dir.
func listDir(dir string) (files, dirs []string, err error) {
	if dir == "" {
		return nil, nil, fmt.Errorf("%w: no folder given", ErrModelDir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w %s does not exist (unpack the sherpa-onnx release tarball there, see docs/speech.md)", ErrModelDir, dir)
		}
		return nil, nil, fmt.Errorf("%w %s: %v", ErrModelDir, dir, err)
	}
	for _, e := range ents {
		t := e.Type()
		if t&fs.ModeSymlink != 0 { // follow links: operators link shared folders
			st, err := os.Stat(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			t = st.Mode().Type()
		}
		switch {
		case t.IsDir():
			dirs = append(dirs, e.Name())
		case t.IsRegular():
			files = append(files, e.Name())
		}
	}
	return files, dirs, nil
}

// pickONNX returns the one .onnx file of files whose name contains role
// ("" = any), preferring the int8-quantized one unless float is true; it
// fails when the choice is ambiguous.
func pickONNX(dir string, files []string, role string, float bool) (string, error) {
	var int8s, floats []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".onnx") || !strings.Contains(f, role) {
			continue
		}
		if strings.HasSuffix(f, ".int8.onnx") {
			int8s = append(int8s, f)
		} else {
			floats = append(floats, f)
		}
	}
	first, second := int8s, floats
	if float {
		first, second = floats, int8s
	}
	for _, l := range [][]string{first, second} {
		switch len(l) {
		case 0:
			continue
		case 1:
			return filepath.Join(dir, l[0]), nil
		default:
			return "", fmt.Errorf("%w %s: several %s files (%s): keep one", ErrModelDir, dir, roleName(role), strings.Join(l, ", "))
		}
	}
	return "", nil
}

func roleName(role string) string {
	if role == "" {
		return ".onnx"
	}
	return "*" + role + "*.onnx"
}

// pickTokens returns the folder's tokens file: tokens.txt or one
// *-tokens.txt (whisper releases name it tiny-tokens.txt).
func pickTokens(dir string, files []string) (string, error) {
	var l []string
	for _, f := range files {
		if f == "tokens.txt" || strings.HasSuffix(f, "-tokens.txt") {
			l = append(l, f)
		}
	}
	switch len(l) {
	case 0:
		return "", fmt.Errorf("%w %s: tokens.txt is missing", ErrModelDir, dir)
	case 1:
		p := filepath.Join(dir, l[0])
		return p, checkTokens(p)
	}
	if slices.Contains(l, "tokens.txt") {
		p := filepath.Join(dir, "tokens.txt")
		return p, checkTokens(p)
	}
	return "", fmt.Errorf("%w %s: several token files (%s): keep one", ErrModelDir, dir, strings.Join(l, ", "))
}

// checkTokens checks that a tokens file is a list of "symbol id" lines
// (the symbol may itself be a space, as piper's is).
func checkTokens(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrModelDir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		n++
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			i = strings.LastIndexByte(line, '\t')
		}
		if i < 0 {
			return fmt.Errorf("%w: %s line %d is not \"symbol id\"", ErrModelDir, path, n)
		}
		if _, err := strconv.Atoi(line[i+1:]); err != nil {
			return fmt.Errorf("%w: %s line %d is not \"symbol id\"", ErrModelDir, path, n)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrModelDir, path, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s is empty", ErrModelDir, path)
	}
	return nil
}

// hint says where the model files are when dir holds only one folder
// (the operator gave the folder the tarball was unpacked into).
func hint(dir string, files, dirs []string) string {
	if len(dirs) == 1 && !slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, ".onnx") }) {
		return fmt.Sprintf(" (did you mean %s?)", filepath.Join(dir, dirs[0]))
	}
	return ""
}

// DetectASR finds the recognition model in dir, a folder as a sherpa-onnx
// release tarball unpacks:
//
//   - whisper (sherpa-onnx-whisper-tiny, -base, -small, ...):
//     <name>-encoder[.int8].onnx, <name>-decoder[.int8].onnx,
//     <name>-tokens.txt;
//   - transducer (sherpa-onnx-nemo-parakeet-tdt-0.6b-v3-int8, icefall
//     zipformer releases): encoder*.onnx, decoder*.onnx, joiner*.onnx,
//     tokens.txt.
//
// A joiner makes it a transducer. With both an int8 and a float file for a
// part, the int8 one is taken unless float is true. kind, when not
// KindAuto, must match what the folder holds. Every .onnx is checked
// (checkONNX) before anyone loads it.
func DetectASR(dir, kind string, float bool) (*ASRModel, error) {
	if kind != KindAuto && kind != KindWhisper && kind != KindTransducer {
		return nil, fmt.Errorf("%w: model kind %q (want %q, %q or empty for automatic)", ErrModelDir, kind, KindWhisper, KindTransducer)
	}
	files, dirs, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	m := &ASRModel{Dir: dir}
	if m.Encoder, err = pickONNX(dir, files, "encoder", float); err != nil {
		return nil, err
	}
	if m.Decoder, err = pickONNX(dir, files, "decoder", float); err != nil {
		return nil, err
	}
	if m.Joiner, err = pickONNX(dir, files, "joiner", float); err != nil {
		return nil, err
	}
	switch {
	case m.Joiner != "":
		m.Kind = KindTransducer
	case m.Encoder != "" || m.Decoder != "":
		m.Kind = KindWhisper
	default:
		return nil, fmt.Errorf("%w %s: no encoder .onnx: not a whisper or transducer model folder%s", ErrModelDir, dir, hint(dir, files, dirs))
	}
	if kind != KindAuto && kind != m.Kind {
		return nil, fmt.Errorf("%w %s holds a %s model (its files say so), not a %s", ErrModelDir, dir, m.Kind, kind)
	}
	for _, p := range [][2]string{{m.Encoder, "encoder"}, {m.Decoder, "decoder"}} {
		if p[0] == "" {
			return nil, fmt.Errorf("%w %s: the %s (%s) is missing", ErrModelDir, dir, p[1], roleName(p[1]))
		}
	}
	if m.Tokens, err = pickTokens(dir, files); err != nil {
		return nil, err
	}
	switch m.Kind {
	case KindWhisper:
		info, err := checkONNX(m.Encoder, whisperMeta...)
		if err != nil {
			return nil, err
		}
		m.Multilingual = info.Meta["is_multilingual"] != "0"
		if m.Multilingual {
			if _, err := checkONNX(m.Encoder, whisperMultiMeta...); err != nil {
				return nil, err
			}
			m.Languages = strings.Split(info.Meta["all_language_codes"], ",")
			for i := range m.Languages {
				m.Languages[i] = strings.TrimSpace(m.Languages[i])
			}
			toks := strings.Split(info.Meta["all_language_tokens"], ",")
			if len(toks) != len(m.Languages) {
				return nil, fmt.Errorf("%w: %s: %d language tokens for %d language codes", ErrBadModel, m.Encoder, len(toks), len(m.Languages))
			}
		}
		if _, err := checkONNX(m.Decoder); err != nil {
			return nil, err
		}
	case KindTransducer:
		enc, err := checkONNX(m.Encoder)
		if err != nil {
			return nil, err
		}
		m.NeMo = true
		for _, k := range nemoMeta {
			if _, ok := enc.Meta[k]; !ok {
				m.NeMo = false
			}
		}
		if m.NeMo {
			_, err = checkONNX(m.Decoder)
		} else {
			_, err = checkONNX(m.Decoder, icefallDecoderMeta...)
		}
		if err != nil {
			return nil, err
		}
		if _, err := checkONNX(m.Joiner); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Supports says whether the model can recognize lang: a multilingual
// whisper must list it, an English-only whisper knows only "en", a
// transducer is trusted to be the language the operator configured.
func (m *ASRModel) Supports(lang string) bool {
	if m.Kind != KindWhisper {
		return true
	}
	if !m.Multilingual {
		return lang == "en"
	}
	return slices.Contains(m.Languages, lang)
}

// DetectTTS finds the VITS (piper) voice in dir, a folder as a sherpa-onnx
// release tarball unpacks (vits-piper-ro_RO-mihai-medium,
// vits-piper-en_US-amy-low, ...): one <voice>.onnx (int8 preferred unless
// float), tokens.txt, espeak-ng-data/ (and lexicon.txt for the few VITS
// models that use a lexicon instead of espeak-ng).
func DetectTTS(dir string, float bool) (*TTSModel, error) {
	files, dirs, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	m := &TTSModel{Dir: dir}
	if m.Model, err = pickONNX(dir, files, "", float); err != nil {
		return nil, err
	}
	if m.Model == "" {
		return nil, fmt.Errorf("%w %s: the voice model (.onnx) is missing%s", ErrModelDir, dir, hint(dir, files, dirs))
	}
	if m.Tokens, err = pickTokens(dir, files); err != nil {
		return nil, err
	}
	if slices.Contains(files, "lexicon.txt") {
		m.Lexicon = filepath.Join(dir, "lexicon.txt")
	}
	if slices.Contains(dirs, "espeak-ng-data") {
		m.DataDir = filepath.Join(dir, "espeak-ng-data")
		if _, err := os.Stat(filepath.Join(m.DataDir, "phontab")); err != nil {
			return nil, fmt.Errorf("%w %s: espeak-ng-data/phontab is missing (incomplete unpack?)", ErrModelDir, dir)
		}
	} else if m.Lexicon == "" {
		return nil, fmt.Errorf("%w %s: espeak-ng-data/ is missing (piper voices need it; it comes in the release tarball)", ErrModelDir, dir)
	}
	info, err := checkONNX(m.Model, vitsMeta...)
	if err != nil {
		if errors.Is(err, ErrBadModel) && info != nil {
			if _, e := os.Stat(m.Model + ".json"); e == nil {
				err = fmt.Errorf("%w (this is a piper voice as piper itself ships it; sherpa-onnx needs its converted release vits-piper-<voice>)", err)
			}
		}
		return nil, err
	}
	if m.Rate, err = strconv.Atoi(info.Meta["sample_rate"]); err != nil || m.Rate < 8000 || m.Rate > 48000 {
		return nil, fmt.Errorf("%w: %s: sample_rate %q is not a rate in 8000..48000 Hz", ErrBadModel, m.Model, info.Meta["sample_rate"])
	}
	if m.Speakers, err = strconv.Atoi(info.Meta["n_speakers"]); err != nil || m.Speakers < 0 {
		return nil, fmt.Errorf("%w: %s: n_speakers %q is not a count", ErrBadModel, m.Model, info.Meta["n_speakers"])
	}
	m.Speakers = max(m.Speakers, 1)
	m.Language = info.Meta["language"]
	return m, nil
}
