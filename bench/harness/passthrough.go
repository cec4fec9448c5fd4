package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// passthrough measures what secrets-init adds on the pass-through path (no
// reference in the environment), for bench/passthrough.sh:
//
//	harness passthrough -bin PATH [-n RUNS] [-true /bin/true] [-sleep /bin/sleep]
//
// It times `PATH -- /bin/true` against `/bin/true` alone, interleaved run
// by run so that both see the same machine, and reports the medians and
// their difference. Then it starts `PATH -- /bin/sleep` and reads the
// supervisor's memory from /proc/PID/status while the child sleeps.
//
// Both commands get the same environment: PATH only. Processes are started
// with fork/exec and waited for with wait4 directly, so the harness's own
// cost is the same on both sides and cancels out in the difference.
func passthrough(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("passthrough", flag.ContinueOnError)
	bin := fs.String("bin", "", "the secrets-init binary")
	runs := fs.Int("n", 500, "timed runs of each command (at least 200)")
	truePath := fs.String("true", "/bin/true", "the command that does nothing")
	sleepPath := fs.String("sleep", "/bin/sleep", "the command that sleeps while memory is read")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *runs < 200 {
		return errors.New("usage: harness passthrough -bin PATH [-n RUNS>=200]")
	}
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}

	plain := []string{*truePath}
	wrapped := []string{*bin, "--", *truePath}
	for i := 0; i < 20; i++ { // warm the page cache and the CPU caches
		timeRun(plain, env)
		timeRun(wrapped, env)
	}
	var a, b []time.Duration
	var cpuA, cpuB time.Duration
	for i := 0; i < *runs; i++ {
		d, cpu := timeRun(plain, env)
		a, cpuA = append(a, d), cpuA+cpu
		d, cpu = timeRun(wrapped, env)
		b, cpuB = append(b, d), cpuB+cpu
	}
	ma, mb := median(a), median(b)
	fmt.Fprintf(out, "runs\t%d each, interleaved\n", *runs)
	fmt.Fprintf(out, "true_median\t%s\n", ms3(ma))
	fmt.Fprintf(out, "wrapped_median\t%s\n", ms3(mb))
	fmt.Fprintf(out, "added_median\t%s\n", ms3(mb-ma))
	fmt.Fprintf(out, "true_p90\t%s\n", ms3(percentile(a, 90)))
	fmt.Fprintf(out, "wrapped_p90\t%s\n", ms3(percentile(b, 90)))
	fmt.Fprintf(out, "added_cpu_mean\t%s\n", ms3((cpuB-cpuA)/time.Duration(*runs)))

	mem, err := memory(*bin, *sleepPath, env)
	if err != nil {
		return err
	}
	for _, k := range []string{"VmRSS", "RssAnon", "RssFile", "VmHWM"} {
		fmt.Fprintf(out, "%s\t%s\n", k, mem[k])
	}
	return nil
}

// timeRun starts argv, waits for it, and returns the wall time and the CPU
// time (user + system) it used. It exits on any failure.
func timeRun(argv, env []string) (time.Duration, time.Duration) {
	start := time.Now()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness passthrough: %v: %v\n", argv, err)
		os.Exit(1)
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	wall := time.Since(start)
	if err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		fmt.Fprintf(os.Stderr, "harness passthrough: %v: %v, status %v\n", argv, err, ws)
		os.Exit(1)
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return wall, cpu
}

// percentile is the nearest-rank percentile p of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*p+99)/100-1]
}

// ms3 formats d in milliseconds to the microsecond.
func ms3(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// memory starts `bin -- sleep 600`, waits until the sleep runs (the
// supervisor is then past resolution and waiting), lets it settle, reads
// its /proc/PID/status, then ends the run with SIGTERM.
func memory(bin, sleep string, env []string) (map[string]string, error) {
	argv := []string{bin, "--", sleep, "600"}
	pid, err := syscall.ForkExec(bin, argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
	if err != nil {
		return nil, err
	}
	defer func() {
		syscall.Kill(pid, syscall.SIGTERM) // forwarded: sleep dies, then secrets-init
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}()
	sleepStat, err := os.Stat(sleep)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for !childRuns(pid, sleepStat) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not start %s within 10s", bin, sleep)
		}
		time.Sleep(time.Millisecond)
	}
	return readStatus(pid)
}

// readStatus reads /proc/PID/status a few times over half a second and
// keeps the largest figures: the runtime may still be returning memory, or
// allocate a little.
func readStatus(pid int) (map[string]string, error) {
	out := map[string]string{}
	best := map[string]int{}
	for i := 0; i < 5; i++ {
		time.Sleep(100 * time.Millisecond)
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(status), "\n") {
			k, v, ok := strings.Cut(line, ":")
			f := strings.Fields(v)
			if !ok || len(f) != 2 || f[1] != "kB" {
				continue
			}
			n, _ := strconv.Atoi(f[0])
			if n >= best[k] {
				best[k] = n
				out[k] = fmt.Sprintf("%.2f MiB (%d kB)", float64(n)/1024, n)
			}
		}
	}
	return out, nil
}

// childRuns reports whether pid has a child that runs the file st.
func childRuns(pid int, st os.FileInfo) bool {
	// Each thread has its own list: the fork may have been any thread's.
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var children []string
	for _, l := range lists {
		b, _ := os.ReadFile(l)
		children = append(children, strings.Fields(string(b))...)
	}
	for _, c := range children {
		if exe, err := os.Stat("/proc/" + c + "/exe"); err == nil && os.SameFile(exe, st) {
			return true
		}
	}
	return false
}
