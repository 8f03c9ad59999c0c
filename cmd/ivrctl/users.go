package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/govline/ivr/tickets"
)

const usersUsage = `Usage: ivrctl users SUBCOMMAND [FLAGS]

Subcommands (add, passwd, disable and enable write to the database):
  add --role ROLE [--provider ID] NAME
                         create a console account of a provider ("default" unless
                         given); the password is read from stdin
  passwd NAME            set a new password (from stdin); unlocks, ends sessions
  disable NAME           refuse sign-ins and end the user's sessions
  enable NAME            allow sign-ins again
  list [--json]          list the accounts
  audit [--user U] [--action A] [--target T] [--since DURATION|TIME] [--limit N] [--json]
                         the audit log, newest first
`

// runUsers dispatches "ivrctl users SUBCOMMAND".
func runUsers(args []string, stdout, stderr io.Writer) int {
	return group{name: "users", usage: usersUsage, subs: map[string]command{
		"add":    runUsersAdd,
		"passwd": runUsersPasswd,
		"disable": func(args []string, stdout, stderr io.Writer) int {
			return runUsersDisable("disable", args, stdout, stderr)
		},
		"enable": func(args []string, stdout, stderr io.Writer) int {
			return runUsersDisable("enable", args, stdout, stderr)
		},
		"list":  runUsersList,
		"audit": runUsersAudit,
	}}.run(args, stdout, stderr)
}

// actor names who runs ivrctl in the audit log: "ivrctl:LOGIN".
func actor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "ivrctl:" + u.Username
	}
	return "ivrctl"
}

// readPassword reads one line from stdin (a terminal, a pipe or a file)
// without echoing it anywhere.
func readPassword() (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("read password from stdin: empty (type it, or pipe it: printf '%s\\n' \"$PW\" | ivrctl users add ...)")
	}
	return pw, nil
}

func runUsersAdd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("users add", "ivrctl users add --role ROLE [--provider ID] NAME [--data DIR]   (password on stdin)", stderr)
	data := dataFlag(fs)
	role := fs.String("role", "", "the account's `ROLE`: "+names(tickets.Roles))
	provider := fs.String("provider", tickets.DefaultProvider, "the `PROVIDER` whose tickets the user works (ivrctl providers list)")
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, stderr, "missing NAME")
	case len(pos) > 1:
		return usageError(fs, stderr, "unexpected argument %q", pos[1])
	case !slices.Contains(tickets.Roles, tickets.Role(*role)):
		return usageError(fs, stderr, "--role %q: want one of %s", *role, names(tickets.Roles))
	}
	pw, err := readPassword()
	if err != nil {
		return fail(stderr, err)
	}
	if code := update(data, stderr, func(ctx context.Context, s conn) error {
		return s.AddProviderUser(ctx, actor(), *provider, pos[0], tickets.Role(*role), pw)
	}); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "user %s added (%s, provider %s)\n", pos[0], *role, *provider)
	return exitOK
}

func runUsersPasswd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("users passwd", "ivrctl users passwd NAME [--data DIR]   (password on stdin)", stderr)
	data := dataFlag(fs)
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one NAME")
	}
	pw, err := readPassword()
	if err != nil {
		return fail(stderr, err)
	}
	if code := update(data, stderr, func(ctx context.Context, s conn) error {
		return s.SetPassword(ctx, actor(), pos[0], pw)
	}); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "password of %s changed\n", pos[0])
	return exitOK
}

func runUsersDisable(verb string, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("users "+verb, "ivrctl users "+verb+" NAME [--data DIR]", stderr)
	data := dataFlag(fs)
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one NAME")
	}
	if code := update(data, stderr, func(ctx context.Context, s conn) error {
		return s.SetUserDisabled(ctx, actor(), pos[0], verb == "disable")
	}); code != exitOK {
		return code
	}
	fmt.Fprintf(stdout, "user %s %sd\n", pos[0], verb)
	return exitOK
}

func runUsersList(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("users list", "ivrctl users list [--json] [--data DIR]", `print {"users":[...]} as JSON`, stderr)
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	return usersListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]tickets.User, error) {
		return s.Users(ctx)
	})
}

var usersListing = listing[tickets.User]{
	key:    "users",
	header: "NAME\tROLE\tPROVIDER\tSTATE\tCREATED",
	row: func(w io.Writer, u tickets.User) {
		state := "active"
		switch {
		case u.Disabled:
			state = "disabled"
		case u.LockedUntil.After(time.Now()):
			state = "locked until " + u.LockedUntil.Local().Format(localTime)
		}
		if u.External {
			state += ", signs in with MPass (SAML)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.Provider, state, u.Created.Local().Format(localTime))
	},
}

func runUsersAudit(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("users audit", "ivrctl users audit [--user U] [--action A] [--target T] [--since DURATION|TIME] [--limit N] [--json] [--data DIR]", `print {"audit":[...]} as JSON`, stderr)
	var q tickets.AuditQuery
	fs.StringVar(&q.User, "user", "", "only entries of `USER`")
	fs.StringVar(&q.Action, "action", "", "only `ACTION` (login, login_failed, login_locked, ticket_view, ticket_escalate...)")
	fs.StringVar(&q.Target, "target", "", "only entries about `TARGET` (a ticket number, a user)")
	since := fs.String("since", "", "only entries of the last `DURATION` (24h) or since a TIME")
	fs.IntVar(&q.Limit, "limit", 100, "at most `N` entries")
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return usageError(fs, stderr, "%v", err)
		}
		q.Since = t
	}
	return auditListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]tickets.AuditEntry, error) {
		return s.AuditLog(ctx, q)
	})
}

var auditListing = listing[tickets.AuditEntry]{
	key:    "audit",
	header: "TIME\tUSER\tACTION\tTARGET\tOK\tADDRESS\tDETAIL",
	row: func(w io.Writer, e tickets.AuditEntry) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", e.At.Local().Format(localTime), e.User, e.Action,
			orDash(e.Target), e.OK, orDash(e.Address), e.Detail)
	},
}
