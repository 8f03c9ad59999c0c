//go:build cgo && !sqlite_fts5 && !fts5 && !libsqlite3

package sqlitefts5

/*
#cgo LDFLAGS: -lm
extern int sqlite3_auto_extension(void (*)(void));
extern int sqlite3_fts5_init(void *db, char **err, const void *api);
extern const char *ivr_fts5_built_for(void);
static int ivr_register_fts5(void) {
	return sqlite3_auto_extension((void (*)(void))sqlite3_fts5_init);
}
*/
import "C"

import (
	"fmt"

	_ "github.com/mattn/go-sqlite3" // the SQLite core the extension registers with
)

func init() {
	if rc := C.ivr_register_fts5(); rc != 0 {
		panic(fmt.Sprintf("sqlitefts5: sqlite3_auto_extension returned %d", int(rc)))
	}
}

// builtFor is the SQLite version fts5.c was generated from.
func builtFor() string { return C.GoString(C.ivr_fts5_built_for()) }
