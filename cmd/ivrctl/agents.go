package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/tickets"
)

const agentsUsage = `Usage: ivrctl agents SUBCOMMAND [FLAGS]

SIP agents of the embedded agent queue (softphones that register with ivrd).

Subcommands:
  add      add an agent, or change its password and queues (password from stdin)
  list     list the agents
  disable  stop an agent from registering
  locks    list the agents and source addresses locked out after failed REGISTERs
  unlock   lift the lockout of an agent (NAME) or of an address (--address IP)
`

// agentsStdin is where "agents add" reads the password (tests replace it).
var agentsStdin io.Reader = os.Stdin

// runAgents dispatches "ivrctl agents SUBCOMMAND".
func runAgents(args []string, stdout, stderr io.Writer) int {
	return group{name: "agents", usage: agentsUsage, missing: " (add, list, disable, locks or unlock)", subs: map[string]command{
		"add":     runAgentsAdd,
		"list":    runAgentsList,
		"disable": runAgentsDisable,
		"locks":   runAgentsLocks,
		"unlock":  runAgentsUnlock,
	}}.run(args, stdout, stderr)
}

func runAgentsAdd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("agents add", "ivrctl agents add --queues Q1[,Q2] [--realm REALM] [--data DIR] NAME   (password on stdin)", stderr)
	data := dataFlag(fs)
	queues := fs.String("queues", "", "comma-separated `QUEUES` the agent answers, e.g. level1,level2 (required)")
	realm := fs.String("realm", sip.DefaultRealm, "digest `REALM`: must equal the engine's sip.queue realm")
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, stderr, "missing NAME")
	case len(pos) > 1:
		return usageError(fs, stderr, "unexpected argument %q", pos[1])
	case *queues == "":
		return usageError(fs, stderr, "--queues is required")
	}
	line, err := bufio.NewReader(agentsStdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return fail(stderr, fmt.Errorf("read the password from stdin: %w", err))
	}
	password := strings.TrimRight(line, "\r\n")
	var qs []string
	for _, q := range strings.Split(*queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			qs = append(qs, q)
		}
	}
	if code := update(data, stderr, func(ctx context.Context, s conn) error {
		return (queue.Directory{DB: s.db}).Add(ctx, pos[0], *realm, password, qs)
	}); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "agent %s answers %s (realm %s)\n", pos[0], strings.Join(qs, ", "), *realm)
	return exitOK
}

func runAgentsList(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("agents list", "ivrctl agents list [--json] [--data DIR]", `print {"agents":[...]} as JSON`, stderr)
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	return agentsListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]agentRow, error) {
		list, err := (queue.Directory{DB: s.db}).List(ctx)
		if err != nil {
			return nil, err
		}
		rows := make([]agentRow, len(list))
		for i, a := range list {
			rows[i] = agentRow{a.Name, a.Realm, a.Queues, a.Disabled}
		}
		return rows, nil
	})
}

// agentRow is an agent as listed: never its password or digest.
type agentRow struct {
	Name     string   `json:"name"`
	Realm    string   `json:"realm"`
	Queues   []string `json:"queues"`
	Disabled bool     `json:"disabled"`
}

var agentsListing = listing[agentRow]{
	key:    "agents",
	empty:  "no agents",
	header: "NAME\tQUEUES\tREALM\tSTATE",
	row: func(w io.Writer, r agentRow) {
		state := "enabled"
		if r.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Name, strings.Join(r.Queues, ","), r.Realm, state)
	},
}

func runAgentsDisable(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("agents disable", "ivrctl agents disable [--data DIR] NAME", stderr)
	data := dataFlag(fs)
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one NAME")
	}
	if code := update(data, stderr, func(ctx context.Context, s conn) error {
		return (queue.Directory{DB: s.db}).Disable(ctx, pos[0])
	}); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "agent %s disabled\n", pos[0])
	return exitOK
}

var locksListing = listing[queue.Lock]{
	key:       "locks",
	emptyJSON: true,
	empty:     "no lockouts",
	header:    "KIND\tTARGET\tUNTIL\tFAILURES",
	row: func(w io.Writer, l queue.Lock) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", l.Kind, l.Target, l.Until.Local().Format("2006-01-02 15:04:05"), l.Failures)
	},
}

func runAgentsLocks(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("agents locks", "ivrctl agents locks [--json] [--data DIR]", `print {"locks":[...]} as JSON`, stderr)
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	return locksListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]queue.Lock, error) {
		return (queue.Directory{DB: s.db}).Locks(ctx)
	})
}

// runAgentsUnlock lifts a lockout: the running ivrd checks the store at
// every REGISTER, so the agent's phone registers again at its next try.
func runAgentsUnlock(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("agents unlock", "ivrctl agents unlock [--data DIR] NAME | --address IP", stderr)
	data := dataFlag(fs)
	addr := fs.String("address", "", "lift the lockout of this source `IP` address instead of an agent's")
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	kind, target := queue.LockAgent, ""
	switch {
	case *addr != "" && len(pos) == 0:
		kind, target = queue.LockAddress, *addr
	case *addr == "" && len(pos) == 1:
		target = pos[0]
	default:
		return usageError(fs, stderr, "want one agent NAME, or --address IP")
	}
	if code := update(data, stderr, func(ctx context.Context, s conn) error {
		if err := (queue.Directory{DB: s.db}).Unlock(ctx, kind, target); err != nil {
			return err
		}
		return s.Audit(ctx, tickets.AuditEntry{User: "ivrctl", Action: "sip_register_unlock", Target: kind + ":" + target, OK: true})
	}); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "%s %s unlocked: it may register again\n", kind, target)
	return exitOK
}
