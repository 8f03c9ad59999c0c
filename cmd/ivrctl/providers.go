package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/govline/ivr/tickets"
)

const providersUsage = `Usage: ivrctl providers SUBCOMMAND [FLAGS]

A line serves several public-service providers (docs/providers.md); the
provider "default" always exists and owns what no other provider was given.

Subcommands (add and set write to the database):
  add ID --name NAME [--services S,S] [--numbers N,N]
                         add a provider, and give it services and dialed numbers
  set ID [--name NAME] [--services S,S] [--numbers N,N]
                         rename a provider, or give it services and dialed numbers
                         (giving them to "default" takes them back)
  list [--json]          list the providers with their services and numbers
`

// runProviders dispatches "ivrctl providers SUBCOMMAND".
func runProviders(args []string, stdout, stderr io.Writer) int {
	return group{name: "providers", usage: providersUsage, subs: map[string]command{
		"add":  func(args []string, stdout, stderr io.Writer) int { return runProvidersSet(true, args, stdout, stderr) },
		"set":  func(args []string, stdout, stderr io.Writer) int { return runProvidersSet(false, args, stdout, stderr) },
		"list": runProvidersList,
	}}.run(args, stdout, stderr)
}

// splitList splits "a,b, c" into its non-empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func runProvidersSet(add bool, args []string, stdout, stderr io.Writer) int {
	verb := map[bool]string{true: "add", false: "set"}[add]
	fs := newFlagSet("providers "+verb, "ivrctl providers "+verb+" ID [--name NAME] [--services S,S] [--numbers N,N] [--data DIR]", stderr)
	data := dataFlag(fs)
	name := fs.String("name", "", "the provider's `NAME` as the console shows it")
	services := fs.String("services", "", "the `SERVICES` whose new requests go to it, comma-separated: "+names(tickets.Services))
	numbers := fs.String("numbers", "", "the dialed `NUMBERS` whose calls and requests go to it, comma-separated")
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, stderr, "missing ID")
	case len(pos) > 1:
		return usageError(fs, stderr, "unexpected argument %q", pos[1])
	case add && strings.TrimSpace(*name) == "":
		return usageError(fs, stderr, "missing --name")
	case !add && *name == "" && *services == "" && *numbers == "":
		return usageError(fs, stderr, "nothing to set: give --name, --services or --numbers")
	}
	var svcs []tickets.Service
	for _, s := range splitList(*services) {
		if !slices.Contains(tickets.Services, tickets.Service(s)) {
			return usageError(fs, stderr, "--services: %q: want some of %s", s, names(tickets.Services))
		}
		svcs = append(svcs, tickets.Service(s))
	}
	id := pos[0]
	if code := update(data, stderr, func(ctx context.Context, s conn) error {
		if add {
			if err := s.AddProvider(ctx, actor(), id, *name); err != nil {
				return err
			}
		} else if *name != "" {
			if err := s.RenameProvider(ctx, actor(), id, *name); err != nil {
				return err
			}
		}
		if len(svcs) > 0 {
			if err := s.SetProviderServices(ctx, actor(), id, svcs); err != nil {
				return err
			}
		}
		if ns := splitList(*numbers); len(ns) > 0 {
			return s.SetProviderNumbers(ctx, actor(), id, ns)
		}
		return nil
	}); code != exitOK {
		return code
	}
	if add {
		fmt.Fprintf(stdout, "provider %s added\n", id)
	} else {
		fmt.Fprintf(stdout, "provider %s updated\n", id)
	}
	return exitOK
}

func runProvidersList(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("providers list", "ivrctl providers list [--json] [--data DIR]", `print {"providers":[...]} as JSON`, stderr)
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	return providersListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]tickets.Provider, error) {
		return s.Providers(ctx)
	})
}

var providersListing = listing[tickets.Provider]{
	key:    "providers",
	header: "ID\tNAME\tSERVICES\tNUMBERS",
	row: func(w io.Writer, p tickets.Provider) {
		svcs := make([]string, len(p.Services))
		for i, s := range p.Services {
			svcs[i] = string(s)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.ID, p.Name, orDash(strings.Join(svcs, ",")), orDash(strings.Join(p.Numbers, ",")))
	},
}
