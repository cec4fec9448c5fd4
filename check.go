package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/signals"
)

// check resolves every reference without running anything or writing a
// file, and prints a value-free table of what it found.
func check(args []string) int {
	o, command, code := parseFlags(args)
	switch {
	case o == nil:
		return code
	case len(command) > 0:
		fmt.Fprintln(os.Stderr, "secrets-init: check takes no command")
		return exitUsage
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, signals.Standard...)
	res, code, err := resolve(o, o.Logger(os.Stderr), sigs, true)
	if code != 0 {
		return code
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	header := "VARIABLE\tSTORE\tREFERENCE\tVERSION\tSTATUS\tLATENCY"
	if o.Refresh > 0 {
		header += "\tCALLS/MONTH\tREFRESH"
	}
	fmt.Fprintln(tw, header)
	plans := refreshPlans(o, res.Report)
	for i, s := range res.Report {
		status := "ok"
		switch {
		case s.Err != nil:
			status = "error: " + s.Reason()
		case s.Missing:
			status = "missing (left unset)"
		}
		kind := "-"
		if s.Kind != 0 {
			kind = s.Kind.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s%s\n", s.Name, kind, s.Reference, orDash(s.Version), status, s.Latency.Round(time.Millisecond), plans.column(i))
	}
	tw.Flush()
	plans.summary(o)
	if err != nil {
		var f *provider.Failure
		if errors.As(err, &f) {
			fmt.Fprintf(os.Stderr, "secrets-init: %d of %d references failed\n", len(f.Vars), len(res.Report))
		}
		return exitFailed
	}
	fmt.Fprintf(os.Stderr, "secrets-init: %d references resolved\n", len(res.Report))
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
