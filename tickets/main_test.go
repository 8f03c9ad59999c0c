package tickets

import (
	"os"
	"testing"

	"github.com/govline/ivr/internal/pgtest"
)

// The PostgreSQL server of this package's tests and benchmarks (started by
// the first that needs it).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
