// Command ivrctl is the administrator's tool for the IVR engine. It reads
// the database that ivrd writes (read-only, safe while ivrd runs):
//
//	ivrctl calls list [--json] [--limit N] [--since 24h|2026-01-02T15:04:05Z]
//	ivrctl calls show CALL_ID [--json]
//	ivrctl calls trace CALL_ID [--json]
//	ivrctl calls tail [--json] [--for DURATION]
//	ivrctl calls originate NUMBER --flow FILE [--trunk URI] [--trunk-ca FILE] [--listen HOST:PORT]   (places a call; writes its record)
//	ivrctl flow lint PATH...
//	ivrctl flow simulate FLOW
//	ivrctl flow test PATH...
//	ivrctl kb search [--lang ro|en] [--json] [--limit N] "QUERY"
//	ivrctl kb import [--dir flows/kb]    (writes: opens the database read-write)
//	ivrctl kb lint [--dir flows/kb]
//	ivrctl kb misses [--since 24h] [--json]
//	ivrctl providers add|set ID [--name N] [--services S,S] [--numbers N,N]   (writes)
//	ivrctl providers list [--json]
//	ivrctl users add --role ROLE [--provider ID] NAME    (password on stdin; writes)
//	ivrctl users list|audit|passwd|disable|enable ...
//	ivrctl tickets hold|unhold NUMBER --reason TEXT    (writes)
//	ivrctl retention run --config ivrd.toml [--dry-run]    (writes unless --dry-run)
//	ivrctl erase --caller NUMBER | --ticket NUMBER [--dry-run]    (writes unless --dry-run)
//	ivrctl audit verify [--chain NAME] [--anchor FILE] [--json]
//	ivrctl audit head [--json]
//	ivrctl audit list ...    (as users audit)
//	ivrctl backup FILE
//
// The database is DIR/ivr.db, where DIR is --data DIR, else $IVR_DATA_DIR,
// else ./var. --data may be given before the command or after it.
//
// This is an administrator's tool: it shows caller numbers as stored,
// unmasked. Do not paste its output into tickets or chats.
//
// Exit status: 0 on success, 1 when the command failed (no database, unknown
// call id...), 2 on a usage error (unknown command, bad flag), 3 when
// audit verify found a changed, deleted or inserted row.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // the command line is wrong
)

// envDataDir names the environment variable that sets the data directory.
const envDataDir = "IVR_DATA_DIR"

// defaultDataDir is used when neither --data nor $IVR_DATA_DIR is set.
const defaultDataDir = "./var"

// command runs one top-level command with the arguments after its name and
// returns the exit status. It writes results to stdout and diagnostics to
// stderr, and never calls os.Exit.
type command func(args []string, stdout, stderr io.Writer) int

// commands maps each top-level command to its implementation. To add one
// (flow, kb, tickets), add an entry here and a line to usage.
var commands = map[string]command{
	"agents":    runAgents,
	"calls":     runCalls,
	"flow":      runFlow,
	"kb":        runKB,
	"providers": runProviders,
	"speech":    runSpeech,
	"tickets":   runTickets,
	"users":     runUsers,
	"audit":     runAudit,
	"backup":    runBackup,
	"retention": runRetention,
	"erase":     runErase,
}

const usage = `Usage: ivrctl [--data DIR] [--store URL] COMMAND [ARGS]

Administrator tool for the IVR engine; reads the database ivrd writes.

Commands:
  agents add    add a SIP agent of the embedded queue (password on stdin)
  agents list   list the SIP agents
  agents locks  list agents and addresses locked out after failed REGISTERs
  agents unlock lift an agent's lockout (NAME) or an address's (--address IP)
  calls list    list recent calls, newest first
  calls show    show one call and its event log
  calls trace   one call's timeline (protocol, flow, speech, DTMF, tickets)
  calls tail    follow every call live
  flow lint     check call flow files (Lua) without running them
  flow simulate talk to a call flow in text, as a caller would
  flow test     run conversation tests of call flows
  kb search     search the knowledge base ("ivrctl kb search --lang ro 'am pierdut buletinul'")
  kb import     check the articles (flows/kb) and replace the base in the database
  kb lint       check the articles without importing
  kb misses     questions the base did not answer confidently
  providers add   add a public-service provider with its services and dialed numbers
  providers set   rename a provider, or give it services and numbers
  providers list  list the providers, their services and numbers
  tickets list  list tickets, newest first (filters: status, service, caller)
  tickets show  show one ticket, its history and its call's transcript
  tickets hold  place a ticket under legal hold ("ivrctl tickets hold 29449217 --reason 'court case 12/2026'"; also: unhold)
  retention run run the retention job now, as ivrd does daily (--dry-run lists what it would remove)
  erase         erase a citizen's data now: --caller NUMBER or --ticket NUMBER (--dry-run first)
  users add     create a console account ("ivrctl users add --role operator --provider pass ana", password on stdin)
  users list    list the console accounts (also: passwd, disable, enable)
  users audit   the audit log: sign-ins, failed sign-ins, every console action
  audit verify  check that no audit row or ticket history row was changed, deleted
                or inserted behind the engine's back (exit status 3 if one was)
  audit head    the chains' head hashes, to keep outside the database as anchors
  audit list    the audit log (as users audit)
  backup FILE   write a consistent copy of the database while ivrd runs
  speech transcribe   recognize a WAV file with the embedded recognizer
  speech say          render text to a WAV file with the embedded synthesizer

The database is the one ivrd's store.url names: --store URL, else (without
--data) $IVR_STORE_URL, else the SQLite file DIR/ivr.db, where DIR is --data,
else $IVR_DATA_DIR, else ./var. URL is postgres://USER:PASSWORD@HOST:PORT/DB
or sqlite:PATH. The knowledge base index is DIR/kb.db (each engine's own).
Run "ivrctl COMMAND SUBCOMMAND -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the global flags, then hands the rest to the command.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ivrctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	data := fs.String("data", "", "data `DIR` holding "+tickets.DBFile)
	storeURL := fs.String("store", "", "the line's database `URL` (store.url)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "ivrctl: missing command")
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if rest[0] == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := commands[rest[0]]
	if !ok {
		fmt.Fprintf(stderr, "ivrctl: unknown command %q\n", rest[0])
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmdArgs := rest[1:]
	for flag, v := range map[string]string{"data": *data, "store": *storeURL} {
		if v == "" {
			continue
		}
		// Leaf commands accept flags anywhere, so a global --data or
		// --store is passed on as one of theirs (before a "--", after which
		// all is positional).
		cmdArgs = slices.Clone(cmdArgs)
		at := slices.Index(cmdArgs, "--")
		if at < 0 {
			at = len(cmdArgs)
		}
		cmdArgs = slices.Insert(cmdArgs, at, "--"+flag+"="+v)
	}
	return cmd(cmdArgs, stdout, stderr)
}

// newFlagSet returns a flag set for a leaf command whose usage text is
// synopsis followed by the flags.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// envStoreURL names the environment variable of ivrd's store.url.
const envStoreURL = "IVR_STORE_URL"

// dataFlags are --data and --store: where the database and the engine's
// local files are.
type dataFlags struct {
	data  string // --data DIR
	store string // --store URL
}

// dataFlag adds --data and --store to fs.
func dataFlag(fs *flag.FlagSet) *dataFlags {
	f := &dataFlags{}
	fs.StringVar(&f.data, "data", "", "data `DIR` holding "+tickets.DBFile+" and the knowledge base index (default $"+envDataDir+", else "+defaultDataDir+")")
	fs.StringVar(&f.store, "store", "", "the line's database `URL`, as ivrd's store.url: postgres://USER:PASSWORD@HOST:PORT/DB or sqlite:PATH (default $"+envStoreURL+" unless --data is given, else the SQLite file in the data folder)")
	return f
}

// dir resolves the data folder: --data, else $IVR_DATA_DIR, else ./var.
func (f *dataFlags) dir() string {
	dir := f.data
	if dir == "" {
		dir = os.Getenv(envDataDir)
	}
	if dir == "" {
		dir = defaultDataDir
	}
	return dir
}

// url resolves the database: --store, else (when --data is not given)
// $IVR_STORE_URL, else the SQLite file in the data folder.
func (f *dataFlags) url() string {
	if f.store != "" {
		return f.store
	}
	if u := os.Getenv(envStoreURL); u != "" && f.data == "" {
		return u
	}
	return store.SQLiteURL(tickets.DBPath(f.dir()))
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments (ivrctl calls show ID --json), which flag.Parse alone
// does not; everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseStatus parses args into fs and returns the positional arguments, or
// the exit status to return at once (help: 0, bad flag: 2) with ok false.
func parseStatus(fs *flag.FlagSet, args []string) (pos []string, status int, ok bool) {
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, exitOK, false
	}
	if err != nil {
		return nil, exitUsage, false // flag already printed the error and usage
	}
	return pos, 0, true
}

// usageError reports a command-line mistake and returns exitUsage.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "ivrctl %s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return exitUsage
}

// fail reports a runtime error and returns exitError.
func fail(stderr io.Writer, err error) int {
	msg := strings.TrimPrefix(err.Error(), "tickets: ")
	fmt.Fprintf(stderr, "ivrctl: %s\n", msg)
	return exitError
}
