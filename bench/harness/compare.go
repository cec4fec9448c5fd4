package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// compare measures several builds side by side in one run, for
// bench/split.sh (the split build against the build before it and tini):
//
//	harness compare [-n RUNS] [-runs N] [-refs 1,10,50] [-latency 50ms] NAME=PATH[ ARG...]...
//
// For each: the wall time `PATH ARG... -- /bin/true` adds to /bin/true,
// every command interleaved run by run (median of RUNS); the supervisor's
// memory while `-- sleep` runs; and, for secrets-init builds (no ARG), the
// time to start the command with 1, 10, 50 Secrets Manager references
// against the fake with -latency per call, interleaved too (median of N).
// Prints a Markdown table, one column per build.
func compare(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	n := fs.Int("n", 500, "pass-through runs of each command (at least 200)")
	runs := fs.Int("runs", 11, "runs per reference count (after one warm-up run)")
	counts := fs.String("refs", "1,10,50", "reference counts")
	latency := fs.Duration("latency", 50*time.Millisecond, "latency the fake adds to every call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type build struct {
		name string
		argv []string // the binary and the arguments before --
		size int64
	}
	var builds []build
	for _, a := range fs.Args() {
		name, cmd, ok := strings.Cut(a, "=")
		argv := strings.Fields(cmd)
		if !ok || len(argv) == 0 {
			return fmt.Errorf("compare: %q is not NAME=PATH[ ARG...]", a)
		}
		st, err := os.Stat(argv[0])
		if err != nil {
			return err
		}
		builds = append(builds, build{name, argv, st.Size()})
	}
	if len(builds) == 0 || *n < 200 {
		return errors.New("usage: harness compare [-n RUNS>=200] NAME=PATH[ ARG...]...")
	}
	row := func(label string, cell func(i int) string) {
		fmt.Fprintf(out, "| %s |", label)
		for i := range builds {
			fmt.Fprintf(out, " %s |", cell(i))
		}
		fmt.Fprintln(out)
	}
	fmt.Fprint(out, "| measure |")
	for _, b := range builds {
		fmt.Fprintf(out, " %s |", b.name)
	}
	fmt.Fprint(out, "\n|---|")
	for range builds {
		fmt.Fprint(out, "---|")
	}
	fmt.Fprintln(out)
	row("size", func(i int) string { return fmt.Sprintf("%.1f MB", float64(builds[i].size)/1e6) })

	// Pass-through, interleaved.
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	plain := []string{"/bin/true"}
	wrapped := make([][]string, len(builds))
	for i, b := range builds {
		wrapped[i] = slices.Concat(b.argv, []string{"--", "/bin/true"})
	}
	for range 20 {
		timeRun(plain, env)
		for _, w := range wrapped {
			timeRun(w, env)
		}
	}
	base := []time.Duration{}
	times := make([][]time.Duration, len(builds))
	for range *n {
		d, _ := timeRun(plain, env)
		base = append(base, d)
		for i, w := range wrapped {
			d, _ := timeRun(w, env)
			times[i] = append(times[i], d)
		}
	}
	row(fmt.Sprintf("pass-through: added wall time, median of %d (`/bin/true` alone: %s)", *n, ms3(median(base))),
		func(i int) string { return "+" + ms3(median(times[i])-median(base)) })
	mems := make([]map[string]string, len(builds))
	for i, b := range builds {
		m, err := memoryOf(b.argv, "/bin/sleep", env)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		mems[i] = m
	}
	for _, k := range []string{"RssAnon", "VmRSS", "RssFile", "VmHWM"} {
		row("supervisor "+k+" while the command runs", func(i int) string { return mems[i][k] })
	}

	// References.
	home, err := os.MkdirTemp("", "secrets-init-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	all, err := newStores(home, *latency)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range all {
			s.close()
		}
	}()
	sm := all[0]
	var last []string
	for _, f := range strings.Split(*counts, ",") {
		refs, err := strconv.Atoi(f)
		if err != nil || refs < 1 {
			return fmt.Errorf("bad -refs %q", *counts)
		}
		vars, want, senv := sm.setup(refs)
		runEnv := slices.Concat(baseEnv(home), senv)
		for k, v := range vars {
			runEnv = append(runEnv, k+"="+v)
		}
		times := make([][]time.Duration, len(builds))
		for r := range *runs + 1 {
			for i, b := range builds {
				if len(b.argv) > 1 {
					continue // not secrets-init
				}
				res, err := execOnce(b.argv[0], runEnv, time.Minute)
				if err == nil {
					err = res.check(want)
				}
				if err != nil {
					return fmt.Errorf("%s, %d references: %w", b.name, refs, err)
				}
				if r > 0 {
					times[i] = append(times[i], res.toChild)
				}
			}
		}
		row(fmt.Sprintf("%d Secrets Manager reference(s), %s per call: to the command, median of %d", refs, *latency, *runs), func(i int) string {
			if len(times[i]) == 0 {
				return "—"
			}
			return ms(median(times[i])) + " ms"
		})
		last = runEnv
	}
	// Memory once references were resolved (the last count's).
	for i, b := range builds {
		mems[i] = nil
		if len(b.argv) == 1 {
			m, err := memoryOf(b.argv, "/bin/sleep", last)
			if err != nil {
				return fmt.Errorf("%s: %w", b.name, err)
			}
			mems[i] = m
		}
	}
	for _, k := range []string{"RssAnon", "VmRSS"} {
		row("supervisor "+k+" while the command runs, after those references", func(i int) string {
			if mems[i] == nil {
				return "—"
			}
			return mems[i][k]
		})
	}
	return nil
}

// memoryOf is memory for a command line with arguments before --.
func memoryOf(argv []string, sleep string, env []string) (map[string]string, error) {
	full := slices.Concat(argv, []string{"--", sleep, "600"})
	pid, err := syscall.ForkExec(argv[0], full, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
	if err != nil {
		return nil, err
	}
	defer func() {
		syscall.Kill(pid, syscall.SIGTERM)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}()
	st, err := os.Stat(sleep)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for !childRuns(pid, st) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not start %s within 10s", argv[0], sleep)
		}
		time.Sleep(time.Millisecond)
	}
	return readStatus(pid)
}
