// Command harness runs the benchmarks of bench/*.sh against a built
// secrets-init and the wire-level fakes the tests use (all on loopback):
//
//	harness stores [flags] BIN       time to start the child per store and reference count
//	harness fleet [flags] BIN        many secrets-init processes at once against a rate-limited AWS
//	harness exectime [-n N] CMD ...  median wall time of running CMD N times
//	harness passthrough -bin PATH    what secrets-init adds to /bin/true, and its memory
//	harness refresh [flags] BIN      --refresh rounds: calls per API, CPU time and memory
//
// Every run of secrets-init gets an environment built from scratch (PATH,
// HOME and the variables that point it at one fake), so nothing from the
// caller's environment (AWS_CA_BUNDLE, SSL_CERT_FILE, a profile) takes part.
// It is not part of secrets-init.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
	"github.com/secrets-init/secrets-init/provider/gcp/gcpfake"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: harness stores|fleet|exectime|passthrough|compare|refresh ...")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "stores":
		err = stores(os.Stdout, args)
	case "fleet":
		err = fleet(os.Stdout, args)
	case "exectime":
		err = exectime(os.Stdout, args)
	case "passthrough":
		err = passthrough(os.Stdout, args)
	case "compare":
		err = compare(os.Stdout, args)
	case "refresh":
		err = refreshBench(os.Stdout, args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

// binary parses fs and returns its one argument, the secrets-init binary.
func binary(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		return "", fmt.Errorf("%s: want one argument, the secrets-init binary", fs.Name())
	}
	bin, err := filepath.Abs(fs.Arg(0))
	if err == nil {
		_, err = os.Stat(bin)
	}
	return bin, err
}

// baseEnv is the environment every run starts from.
func baseEnv(home string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home}
}

// A run is one secrets-init process whose child is env -0.
type run struct {
	toChild time.Duration // from just before exec until the child's first output
	code    int
	env     map[string]string // the child's environment
	stderr  string
}

// execOnce runs bin [flags] -- env -0 with exactly env, for at most limit.
func execOnce(bin string, env []string, limit time.Duration, flags ...string) (run, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(flags, "--", "env", "-0")...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return run{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return run{}, err
	}
	r := run{env: map[string]string{}}
	br := bufio.NewReader(out)
	if _, err := br.Peek(1); err == nil {
		r.toChild = time.Since(start)
	}
	all, _ := io.ReadAll(br)
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("secrets-init ran longer than %s", limit)
	case err != nil && !errors.As(err, &exit):
		return r, err
	}
	r.code, r.stderr = cmd.ProcessState.ExitCode(), stderr.String()
	for _, kv := range strings.Split(string(all), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			r.env[k] = v
		}
	}
	return r, nil
}

// check returns an error unless r started its child with every variable of
// want set to its value.
func (r run) check(want map[string]string) error {
	if r.code != 0 || r.toChild == 0 {
		return fmt.Errorf("exit %d, the child did not start; stderr:\n%s", r.code, r.stderr)
	}
	for k, v := range want {
		if r.env[k] != v {
			return fmt.Errorf("the child's %s is %q, want the value %q", k, r.env[k], v)
		}
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 1, 64) }

// A store is one store of the stores benchmark, with its fake.
type store struct {
	name string
	// setup stores n secrets, returns the variables referencing them with
	// the values the child must get, and the environment for the fake.
	setup func(n int) (vars, want map[string]string, env []string)
	// calls returns the counts of API calls the fake has received so far:
	// the total first, then the breakdown that parts names.
	calls func() []int
	parts []string
	close func()
}

func stores(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("stores", flag.ContinueOnError)
	runs := fs.Int("runs", 5, "timed runs per row (after one untimed warm-up run)")
	latency := fs.Duration("latency", 50*time.Millisecond, "latency the fakes add to every call")
	counts := fs.String("refs", "1,10,50,200", "reference counts")
	only := fs.String("store", "", "only the store with this name (sm, ssm, gcp, azure)")
	bin, err := binary(fs, args)
	if err != nil {
		return err
	}
	var ns []int
	for _, f := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("bad -refs %q", *counts)
		}
		ns = append(ns, n)
	}
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

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "store\trefs\tto child, median ms\tmin ms\tmax ms\tAPI calls per start\t\n")
	base := baseEnv(home)
	var times []time.Duration
	for range *runs + 1 {
		r, err := execOnce(bin, base, 30*time.Second)
		if err == nil {
			err = r.check(nil)
		}
		if err != nil {
			return fmt.Errorf("no references: %w", err)
		}
		times = append(times, r.toChild)
	}
	times = times[1:]
	fmt.Fprintf(tw, "(none)\t0\t%s\t%s\t%s\t0\t\n", ms(median(times)), ms(slices.Min(times)), ms(slices.Max(times)))
	for _, s := range all {
		if *only != "" && s.name != *only {
			continue
		}
		for _, n := range ns {
			vars, want, env := s.setup(n)
			env = slices.Concat(base, env)
			for k, v := range vars {
				env = append(env, k+"="+v)
			}
			var times []time.Duration
			var calls []int
			var detail []int
			for i := range *runs + 1 {
				before := s.calls()
				r, err := execOnce(bin, env, 60*time.Second)
				if err == nil {
					err = r.check(want)
				}
				if err != nil {
					return fmt.Errorf("%s, %d references: %w", s.name, n, err)
				}
				after := s.calls()
				if i == 0 {
					continue // warm-up
				}
				times = append(times, r.toChild)
				calls = append(calls, after[0]-before[0])
				detail = detail[:0]
				for k := 1; k < len(after); k++ {
					detail = append(detail, after[k]-before[k])
				}
			}
			c := strconv.Itoa(calls[0])
			if lo, hi := slices.Min(calls), slices.Max(calls); lo != hi {
				c = fmt.Sprintf("%d-%d", lo, hi)
			}
			if len(detail) > 0 {
				var ps []string
				for k, d := range detail {
					ps = append(ps, fmt.Sprintf("%d %s", d, s.parts[k]))
				}
				c += " (" + strings.Join(ps, ", ") + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", s.name, n, ms(median(times)), ms(slices.Min(times)), ms(slices.Max(times)), c)
		}
	}
	return tw.Flush()
}

// newStores starts the fakes, each with latency added to every call.
func newStores(dir string, latency time.Duration) ([]*store, error) {
	a := awsfake.New()
	a.SetLatency(latency)
	const region = "us-east-1"
	awsEnv := []string{"AWS_REGION=" + region}
	for k, v := range a.Env() {
		awsEnv = append(awsEnv, k+"="+v)
	}
	awsCalls := func() []int { return []int{len(a.Calls())} }
	sm := &store{name: "secretsmanager", calls: awsCalls, close: func() {}, setup: func(n int) (map[string]string, map[string]string, []string) {
		vars, want := map[string]string{}, map[string]string{}
		for i := range n {
			name, v := fmt.Sprintf("bench/%d/s%d", n, i), fmt.Sprintf("sm-value-%d-%d", n, i)
			a.PutSecret(region, name, awsfake.Secret{String: v})
			vars[fmt.Sprint("S", i)], want[fmt.Sprint("S", i)] = "aws:secretsmanager:"+name, v
		}
		return vars, want, awsEnv
	}}
	ssm := &store{name: "ssm", calls: awsCalls, close: a.Close, setup: func(n int) (map[string]string, map[string]string, []string) {
		vars, want := map[string]string{}, map[string]string{}
		for i := range n {
			name, v := fmt.Sprintf("/bench/%d/p%d", n, i), fmt.Sprintf("ssm-value-%d-%d", n, i)
			a.PutParameter(region, name, awsfake.Parameter{Value: v, Secure: true})
			vars[fmt.Sprint("S", i)], want[fmt.Sprint("S", i)] = "aws:ssm:"+name, v
		}
		return vars, want, awsEnv
	}}

	g, err := gcpfake.Start()
	if err != nil {
		a.Close()
		return nil, err
	}
	g.SetLatency(latency)
	gcp := &store{name: "gcp", close: g.Close,
		calls: func() []int { return []int{len(g.Requests())} },
		setup: func(n int) (map[string]string, map[string]string, []string) {
			vars, want := map[string]string{}, map[string]string{}
			for i := range n {
				name, v := fmt.Sprintf("projects/bench/secrets/n%d-s%d", n, i), fmt.Sprintf("gcp-value-%d-%d", n, i)
				g.Add(name, []byte(v))
				vars[fmt.Sprint("S", i)], want[fmt.Sprint("S", i)] = "gcp:secretmanager:"+name, v
			}
			return vars, want, []string{"SECRET_MANAGER_EMULATOR_HOST=" + g.Addr, "GOOGLE_CLOUD_PROJECT=bench"}
		}}

	z, err := azurefake.Start()
	if err != nil {
		a.Close()
		g.Close()
		return nil, err
	}
	z.SetRequestLatency(latency)
	ca := filepath.Join(dir, "azurefake-ca.pem")
	if err := os.WriteFile(ca, z.CACert, 0o600); err != nil {
		return nil, err
	}
	const vault = "https://bench.vault.azure.net"
	azure := &store{name: "azure", close: z.Close,
		calls: func() []int { return []int{z.Requests(), z.TokenRequests(), z.SecretRequests()} },
		parts: []string{"token", "reads"},
		setup: func(n int) (map[string]string, map[string]string, []string) {
			vars, want := map[string]string{}, map[string]string{}
			for i := range n {
				name, v := fmt.Sprintf("n%d-s%d", n, i), fmt.Sprintf("azure-value-%d-%d", n, i)
				z.Put(vault, name, azurefake.Secret{Value: v})
				vars[fmt.Sprint("S", i)], want[fmt.Sprint("S", i)] = "azure:keyvault:"+vault+"/secrets/"+name, v
			}
			return vars, want, []string{"HTTPS_PROXY=" + z.ProxyURL, "HTTP_PROXY=" + z.ProxyURL, "NO_PROXY=127.0.0.1,localhost",
				"SSL_CERT_FILE=" + ca, "AZURE_TENANT_ID=" + azurefake.Tenant, "AZURE_CLIENT_ID=" + azurefake.ClientID,
				"AZURE_CLIENT_SECRET=" + azurefake.ClientSecret}
		}}
	return []*store{sm, ssm, gcp, azure}, nil
}

func fleet(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	procs := fs.Int("procs", 200, "secrets-init processes started at once")
	refs := fs.Int("refs", 10, "Secrets Manager references per process")
	rate := fs.Float64("rate", 100, "the fake's rate limit, requests per second")
	burst := fs.Int("burst", 100, "the rate limit's burst (token bucket size)")
	latency := fs.Duration("latency", 50*time.Millisecond, "latency the fake adds to every call")
	timeout := fs.Duration("timeout", 30*time.Second, "secrets-init's --timeout")
	limit := fs.Duration("limit", 40*time.Second, "kill the processes still running after this")
	label := fs.String("label", "", "a label for the table's row")
	header := fs.Bool("header", true, "print the table's header")
	var extra listFlag
	fs.Var(&extra, "env", "add `NAME=VALUE` to the processes' environment (repeatable)")
	atOnce := fs.Bool("at-once", false, "hold the first requests until every process has sent one, then let them\nreach the rate limit together (as processes on as many machines would; here they share a few cores)")
	bin, err := binary(fs, args)
	if err != nil {
		return err
	}
	home, err := os.MkdirTemp("", "secrets-init-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)

	a := awsfake.New()
	defer a.Close()
	a.SetLatency(*latency)
	const region = "us-east-1"
	env := baseEnv(home)
	env = append(env, "AWS_REGION="+region)
	for k, v := range a.Env() {
		env = append(env, k+"="+v)
	}
	env = append(env, extra...)
	want := map[string]string{}
	for i := range *refs {
		name, v := fmt.Sprintf("app/s%d", i), fmt.Sprintf("fleet-value-%d", i)
		a.PutSecret(region, name, awsfake.Secret{String: v})
		env = append(env, fmt.Sprintf("S%d=aws:secretsmanager:%s", i, name))
		want[fmt.Sprint("S", i)] = v
	}
	a.SetRateLimit(*rate, *burst)

	type outcome struct {
		run
		err error
	}
	results := make([]outcome, *procs)
	if *atOnce {
		a.Hold()
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		wg.Go(func() {
			r, err := execOnce(bin, env, *limit, "--timeout", timeout.String())
			results[i] = outcome{r, err}
		})
	}
	spread := "-"
	if *atOnce {
		// Each process sends one batch call first; release them when all
		// have, or after 30s, whichever comes first.
		for deadline := time.Now().Add(30 * time.Second); a.Held() < *procs && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		spread = strconv.FormatFloat(time.Since(start).Seconds(), 'f', 2, 64)
		a.Release()
	}
	wg.Wait()
	wall := time.Since(start)

	started, wrong, failed, killed := 0, 0, 0, 0
	var times []time.Duration
	var firstErr string
	for _, r := range results {
		switch {
		case r.err != nil:
			killed++
			firstErr = r.err.Error()
		case r.code != 0:
			failed++
			if firstErr == "" {
				firstErr = strings.TrimSpace(r.stderr)
			}
		case r.check(want) != nil:
			wrong++ // started with a raw reference or a wrong value
			firstErr = r.check(want).Error()
		default:
			started++
			times = append(times, r.toChild)
		}
	}
	calls, throttled := len(a.Calls()), a.Throttled()
	minCalls := *procs * ((*refs + 19) / 20)
	// Fixed widths, so that the rows of separate runs line up.
	const row = "%-36s %6s %5s %5s %6s %7s %5s %6s %6s %6s %6s %6s %6s %9s %7s %6s\n"
	if *header {
		fmt.Fprintf(out, row, "build", "rate/s", "burst", "procs", "held s", "started", "wrong", "failed",
			"wall s", "p50 s", "p90 s", "max s", "calls", "throttled", "minimum", "ratio")
	}
	p := func(q float64) string {
		if len(times) == 0 {
			return "-"
		}
		s := slices.Clone(times)
		slices.Sort(s)
		return strconv.FormatFloat(s[int(q*float64(len(s)-1))].Seconds(), 'f', 2, 64)
	}
	fmt.Fprintf(out, row, *label, fmt.Sprint(*rate), fmt.Sprint(*burst), fmt.Sprint(*procs), spread, fmt.Sprint(started),
		fmt.Sprint(wrong), fmt.Sprint(failed+killed), fmt.Sprintf("%.2f", wall.Seconds()), p(0.5), p(0.9), p(1),
		fmt.Sprint(calls), fmt.Sprint(throttled), fmt.Sprint(minCalls), fmt.Sprintf("%.2f", float64(calls)/float64(minCalls)))
	if firstErr != "" {
		fmt.Fprintf(out, "first failure: %s\n", firstErr)
	}
	return nil
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func exectime(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("exectime", flag.ContinueOnError)
	n := fs.Int("n", 200, "runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("exectime: no command")
	}
	home, err := os.MkdirTemp("", "secrets-init-exectime-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	var times []time.Duration
	for i := range *n + 5 {
		cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
		cmd.Env = baseEnv(home)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(fs.Args(), " "), err, out)
		}
		if i >= 5 { // warm-up
			times = append(times, time.Since(start))
		}
	}
	fmt.Fprintln(out, ms(median(times)))
	return nil
}
