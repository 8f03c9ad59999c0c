package ivr

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/govline/ivr/audio"
)

// PromptNames are the prompts the built-in menu session needs.
var PromptNames = []string{"greeting", "menu", "info_identity", "info_portal", "operator", "invalid", "no_input", "goodbye"}

// Prompts is a set of loaded prompts, kept as PCM at every rate a call may
// use. Read-only after LoadPrompts, so safe for concurrent use.
type Prompts struct {
	Lang   string
	byRate map[int]map[string][]int16
}

// PromptConfig says where prompts come from.
//
// For each NAME, Dir/LANG/NAME.wav is a recorded prompt and wins; otherwise
// Dir/LANG/NAME.txt is the text that espeak-ng renders (at 16 kHz) into
// Cache/LANG/NAME.wav, again whenever the text is newer than the cache.
type PromptConfig struct {
	Dir   string
	Cache string
	Lang  string
	Rates []int
	Names []string
}

// LoadPrompts renders what is missing and loads every prompt, failing with
// an error that names the file when one is missing or not a valid WAV.
func LoadPrompts(c PromptConfig) (*Prompts, error) {
	if c.Lang == "" {
		c.Lang = "ro"
	}
	if len(c.Rates) == 0 {
		c.Rates = []int{8000, 16000}
	}
	if len(c.Names) == 0 {
		c.Names = PromptNames
	}
	p := &Prompts{Lang: c.Lang, byRate: map[int]map[string][]int16{}}
	for _, r := range c.Rates {
		p.byRate[r] = map[string][]int16{}
	}
	for _, name := range c.Names {
		path, err := c.source(name)
		if err != nil {
			return nil, err
		}
		for _, r := range c.Rates {
			pcm, err := audio.LoadWAVFile(path, r)
			if err != nil {
				return nil, fmt.Errorf("prompt %q: %w", name, err)
			}
			if len(pcm) == 0 {
				return nil, fmt.Errorf("prompt %q: %s holds no audio", name, path)
			}
			p.byRate[r][name] = pcm
		}
	}
	return p, nil
}

// source returns the WAV file for a prompt, rendering it when needed.
func (c PromptConfig) source(name string) (string, error) {
	recorded := filepath.Join(c.Dir, c.Lang, name+".wav")
	if _, err := os.Stat(recorded); err == nil {
		return recorded, nil
	}
	text := filepath.Join(c.Dir, c.Lang, name+".txt")
	ti, err := os.Stat(text)
	if err != nil {
		return "", fmt.Errorf("prompt %q: neither %s nor %s exists", name, recorded, text)
	}
	out := filepath.Join(c.Cache, c.Lang, name+".wav")
	if oi, err := os.Stat(out); err == nil && !oi.ModTime().Before(ti.ModTime()) {
		return out, nil
	}
	if err := renderPrompt(text, out, c.Lang); err != nil {
		return "", fmt.Errorf("prompt %q: %w", name, err)
	}
	return out, nil
}

// espeakVoice maps our language codes to espeak-ng voices.
func espeakVoice(lang string) string {
	switch lang {
	case "en":
		return "en-gb"
	default:
		return lang
	}
}

// renderPrompt speaks the text file with espeak-ng and converts the result
// to 16 kHz mono 16-bit with sox, writing out atomically.
func renderPrompt(textFile, out, lang string) error {
	for _, tool := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("rendering %s needs %s (apt-get install espeak-ng sox, or run make prompts): %w", textFile, tool, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
		return err
	}
	raw := out + ".espeak.tmp.wav"
	tmp := out + ".tmp.wav"
	defer os.Remove(raw)
	defer os.Remove(tmp)
	if b, err := exec.Command("espeak-ng", "-v", espeakVoice(lang), "-s", "150", "-f", textFile, "-w", raw).CombinedOutput(); err != nil {
		return fmt.Errorf("espeak-ng on %s: %v: %s", textFile, err, strings.TrimSpace(string(b)))
	}
	if b, err := exec.Command("sox", raw, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("sox on %s: %v: %s", raw, err, strings.TrimSpace(string(b)))
	}
	return os.Rename(tmp, out)
}

// Get returns a prompt's PCM at rate. The slice is shared: do not modify it.
func (p *Prompts) Get(name string, rate int) ([]int16, error) {
	m, ok := p.byRate[rate]
	if !ok {
		return nil, fmt.Errorf("prompts are not loaded at %d Hz", rate)
	}
	pcm, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNoPrompt, name)
	}
	return pcm, nil
}

// Names lists the loaded prompts.
func (p *Prompts) Names() []string {
	var out []string
	for _, m := range p.byRate {
		for n := range m {
			out = append(out, n)
		}
		break
	}
	sort.Strings(out)
	return out
}

// ErrNoPrompt is returned for an unknown prompt name.
var ErrNoPrompt = errors.New("no such prompt")
