package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// refresh runs one secrets-init with --refresh against the AWS fake and a
// child that sleeps, and prints one row per round: the fake's calls per API,
// the child's starts, and the CPU time and memory of the supervisor and of
// the resident resolver. Midway, one secret is rotated.
func refreshBench(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("refresh", flag.ContinueOnError)
	nsm := fs.Int("sm", 25, "Secrets Manager references")
	nssm := fs.Int("ssm", 25, "SSM Parameter Store references")
	latency := fs.Duration("latency", 50*time.Millisecond, "latency the fake adds to every call")
	interval := fs.Duration("interval", 2*time.Second, "--refresh interval (below 10s through "+testFloor+")")
	rounds := fs.Int("rounds", 10, "rounds to run")
	rotateAfter := fs.Int("rotate-after", 5, "rotate one secret after this round (0: never)")
	bin, err := binary(fs, args)
	if err != nil {
		return err
	}
	home, err := os.MkdirTemp("", "secrets-init-refresh-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)

	a := awsfake.New()
	defer a.Close()
	a.SetLatency(*latency)
	const region = "us-east-1"
	env := append(baseEnv(home), "AWS_REGION="+region, testFloor+"=100ms")
	for k, v := range a.Env() {
		env = append(env, k+"="+v)
	}
	for i := range *nsm {
		name := fmt.Sprintf("app/s%d", i)
		a.PutSecret(region, name, awsfake.Secret{String: fmt.Sprintf("sm-value-%d", i)})
		env = append(env, fmt.Sprintf("S%d=aws:secretsmanager:%s", i, name))
	}
	for i := range *nssm {
		name := fmt.Sprintf("/app/p%d", i)
		a.PutParameter(region, name, awsfake.Parameter{Value: fmt.Sprintf("ssm-value-%d", i), Secure: true})
		env = append(env, fmt.Sprintf("P%d=aws:ssm:%s", i, name))
	}
	if *nsm == 0 {
		*rotateAfter = 0 // nothing to rotate
	}

	// The child says when it starts, with the value of S0 (the secret
	// rotated), then sleeps.
	statusFile := filepath.Join(home, "status.json")
	cmd := exec.Command(bin, "--refresh", interval.String(), "--status-file", statusFile, "--",
		"sh", "-c", `echo "start $S0"; exec sleep 3600`)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var mu sync.Mutex
	var starts []string
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			starts = append(starts, strings.TrimPrefix(sc.Text(), "start "))
			mu.Unlock()
		}
	}()
	nstarts := func() int { mu.Lock(); defer mu.Unlock(); return len(starts) }

	sup := cmd.Process.Pid
	ops := []string{"DescribeSecret", "GetParameters", "BatchGetSecretValue", "GetSecretValue", "other"}
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "| round\t| at s\t| %s\t| child starts\t| supervisor CPU ms\t| supervisor RssAnon/VmRSS MiB (threads)\t| resolver CPU ms\t| resolver RssAnon/VmRSS MiB (threads)\t|\n", strings.Join(ops, "\t| "))
	fmt.Fprintf(tw, "|%s\n", strings.Repeat("---\t|", 7+len(ops)))

	// A round has ended when the status file counts one more check; its
	// calls are counted then, the rest of its row a moment later, once the
	// action (a restart) is done.
	start := time.Now()
	roundStart, checked := 0, -1
	deadline := time.Now().Add(time.Duration(*rounds+3) * *interval * 12 / 10)
	var rotatedTo string
	var first, last [2]string // CPU ms of the supervisor and the resolver after rounds 0 and the last
	firstN, rotatedAt := 0, -1
	for checked < *rounds {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d rounds by the deadline; stderr:\n%s", checked, stderr.String())
		}
		if syscall.Kill(sup, 0) != nil {
			return fmt.Errorf("secrets-init exited; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		n, ok := checks(statusFile)
		if !ok || n == checked || (checked < 0 && nstarts() == 0) {
			continue
		}
		atStart := checked < 0
		checked = n
		round := n
		at := time.Since(start)
		calls := a.Calls() // the round's calls, re-reads included, are done
		if !atStart {
			time.Sleep(*interval / 5) // for the action (a restart)
		}
		count := map[string]int{}
		for _, c := range calls[roundStart:] {
			if !containsOp(ops, c.Op) {
				c.Op = "other"
			}
			count[c.Op]++
		}
		roundStart = len(calls)
		row := []string{strconv.Itoa(round), fmt.Sprintf("%.1f", at.Seconds())}
		for _, op := range ops {
			row = append(row, strconv.Itoa(count[op]))
		}
		row = append(row, strconv.Itoa(nstarts()))
		supF, resF := procFigures(sup), procFigures(resolverOf(sup))
		row = append(row, supF...)
		row = append(row, resF...)
		if atStart {
			first, firstN = [2]string{supF[0], resF[0]}, n
		}
		last = [2]string{supF[0], resF[0]}
		label := row[0]
		switch {
		case atStart && n == 0:
			label = "0 (start)"
		case atStart:
			label = fmt.Sprintf("0-%d (start and first check)", n)
		case round == rotatedAt:
			label += " (after rotation)"
		}
		row[0] = label
		fmt.Fprintf(tw, "| %s\t|\n", strings.Join(row, "\t| "))
		if *rotateAfter > 0 && round >= *rotateAfter && rotatedTo == "" {
			rotatedTo, rotatedAt = "sm-value-0-rotated", round+1
			a.Rotate(region, "app/s0", awsfake.Secret{String: rotatedTo})
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	perRound := func(i int) string {
		a, err1 := strconv.Atoi(first[i])
		b, err2 := strconv.Atoi(last[i])
		if err1 != nil || err2 != nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(b-a)/float64(checked-firstN))
	}
	fmt.Fprintf(out, "\nCPU per round (rounds %d-%d, the restart included; /proc counts 10 ms ticks): supervisor %s ms, resolver %s ms\n",
		firstN+1, checked, perRound(0), perRound(1))
	mu.Lock()
	defer mu.Unlock()
	if rotatedTo != "" && (len(starts) != 2 || starts[1] != rotatedTo) {
		return fmt.Errorf("want 2 starts of the child, the second with the rotated value; got %d", len(starts))
	}
	if rotatedTo == "" && len(starts) != 1 {
		return errors.New("the child restarted with no rotation")
	}
	return nil
}

const testFloor = "SECRETS_INIT_TEST_REFRESH_FLOOR"

// checks returns the number of checks the status file at path counts.
func checks(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	var st struct {
		Counters struct {
			Checks int `json:"checks"`
		} `json:"counters"`
	}
	if json.Unmarshal(b, &st) != nil {
		return 0, false
	}
	return st.Counters.Checks, true
}

func containsOp(ops []string, op string) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

// procFigures returns pid's CPU time (utime+stime) in ms and its
// "RssAnon/VmRSS (threads)" in MiB, or dashes when there is no such process.
func procFigures(pid int) []string {
	none := []string{"-", "-"}
	if pid <= 0 {
		return none
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return none
	}
	// Fields after the command (which may hold spaces): state is field 3,
	// utime 14 and stime 15.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return none
	}
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	const ticks = 100 // USER_HZ on Linux
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return none
	}
	kb, threads := map[string]float64{}, "?"
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "Threads" {
			threads = strings.TrimSpace(v)
		}
		if fs := strings.Fields(v); len(fs) == 2 && fs[1] == "kB" {
			n, _ := strconv.Atoi(fs[0])
			kb[k] = float64(n) / 1024
		}
	}
	return []string{strconv.Itoa((ut + st) * 1000 / ticks), fmt.Sprintf("%.1f/%.1f (%s)", kb["RssAnon"], kb["VmRSS"], threads)}
}

// resolverOf returns the pid of the resident resolver, the child of pid
// whose argv[0] is secrets-init-resolver, or 0.
func resolverOf(pid int) int {
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, l := range lists {
		b, _ := os.ReadFile(l)
		for _, c := range strings.Fields(string(b)) {
			argv, _ := os.ReadFile("/proc/" + c + "/cmdline")
			if a0, _, _ := strings.Cut(string(argv), "\x00"); filepath.Base(a0) == "secrets-init-resolver" {
				n, _ := strconv.Atoi(c)
				return n
			}
		}
	}
	return 0
}
