package console

import (
	"os"
	"testing"

	"github.com/govline/ivr/internal/pgtest"
)

// The PostgreSQL server of the tests with several engines (started by the
// first that needs it).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
