package kamailio_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govline/ivr/internal/testenv"
)

// The shipped configuration passes Kamailio's own check with the two
// defines given as docs/scale-out.md shows, and with none (its defaults).
func TestConfigChecks(t *testing.T) {
	bin := testenv.Tool(t, "kamailio", "kamailio")
	cfg, _ := filepath.Abs("kamailio.cfg")
	list, _ := filepath.Abs("dispatcher.list")
	for _, args := range [][]string{
		{"-A", "LISTEN=udp:127.0.0.1:5070", "-A", `DSLIST="` + list + `"`},
		{},
	} {
		out, err := exec.Command(bin, append([]string{"-c", "-f", cfg}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "config file ok") {
			t.Fatalf("kamailio -c %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "127.0.0.1 [127.0.0.1]:5070") {
			t.Errorf("kamailio -c %v does not listen on udp:127.0.0.1:5070:\n%s", args, out)
		}
	}
}
