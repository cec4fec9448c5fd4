package vaultengines_test

// SPEC §8, "Vault writes and certificates", end to end: a certificate,
// its key and its CA from one >>vault:pki/issue/ROLE write as ?file
// values, under refresh, on Vault's real PKI engine with a 30s role TTL.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childVar, set to "reader" in the command's environment, makes the test
// binary the command (see reader).
const childVar = "E2E_VAULTENGINES_CHILD"

// reader is the command under secrets-init: it appends to $EVENTS
//
//	start PID SERIAL   at start
//	read PID SERIAL    every 20 ms
//	hup PID SERIAL     on SIGHUP
//	term PID           on SIGTERM, then exits 0
//	bad PID REASON     when a read finds a torn or unreadable set
//
// where SERIAL is the serial number (as Vault writes it) of the
// certificate in $TLS_CERT, read as a Kubernetes-style reader does:
// ..data resolved once, then the certificate, the key and the CA read
// from that one directory. Each read checks that the key is the
// certificate's and that the CA signed it.
func reader() {
	events := os.Getenv("EVENTS")
	pid := os.Getpid()
	var mu sync.Mutex
	line := func(kind, rest string) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(events, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			os.Exit(3)
		}
		f.WriteString(strings.TrimSpace(fmt.Sprintf("%s %d %s", kind, pid, rest)) + "\n") // one write(2)
		f.Close()
	}
	read := func() (string, error) {
		certPath := os.Getenv("TLS_CERT")
		dir, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(certPath), "..data"))
		if err != nil {
			return "", fmt.Errorf("resolving ..data: %w", err)
		}
		file := func(v string) ([]byte, error) {
			link, err := os.Readlink(os.Getenv(v))
			if err != nil {
				return nil, err
			}
			return os.ReadFile(filepath.Join(dir, filepath.Base(link)))
		}
		certPEM, err := file("TLS_CERT")
		if err != nil {
			return "", err
		}
		keyPEM, err := file("TLS_KEY")
		if err != nil {
			return "", err
		}
		caPEM, err := file("TLS_CA")
		if err != nil {
			return "", err
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			return "", fmt.Errorf("torn: the key is not the certificate's")
		}
		cert, err1 := parse(certPEM)
		ca, err2 := parse(caPEM)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("not PEM certificates")
		}
		if err := cert.CheckSignatureFrom(ca); err != nil {
			return "", fmt.Errorf("torn: the CA did not sign the certificate")
		}
		return serialOf(cert), nil
	}
	report := func(kind string) {
		serial, err := read()
		if err != nil {
			line("bad", kind+": "+err.Error())
			return
		}
		line(kind, serial)
	}
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGHUP, syscall.SIGTERM)
	report("start")
	tick := time.NewTicker(20 * time.Millisecond)
	for {
		select {
		case s := <-c:
			if s == syscall.SIGTERM {
				line("term", "")
				os.Exit(0)
			}
			report("hup")
		case <-tick.C:
			report("read")
		}
	}
}

func parse(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// serialOf formats a certificate's serial number as Vault does: hex
// bytes joined by ':'.
func serialOf(c *x509.Certificate) string {
	var parts []string
	for _, b := range c.SerialNumber.Bytes() {
		parts = append(parts, fmt.Sprintf("%02x", b))
	}
	return strings.Join(parts, ":")
}

// event is one line of the reader.
type event struct {
	kind   string
	pid    int
	detail string
}

func events(path string) []event {
	b, _ := os.ReadFile(path)
	var out []event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(f[1])
		e := event{kind: f[0], pid: pid}
		if len(f) == 3 {
			e.detail = f[2]
		}
		out = append(out, e)
	}
	return out
}

// TestReissue runs the reader under secrets-init with TLS_CERT, TLS_KEY
// and TLS_CA from one issue of a role whose certificates last 30s:
//
//   - --refresh leases (and --refresh 10s), --on-file-change HUP: the
//     certificate is re-issued at about 2/3 of its validity, with one
//     issue call per re-issue for the three variables; the reader never
//     sees a key that is not its certificate's (hundreds of reads across
//     three re-issues); the HUP comes after the switch (the reader finds
//     the new certificate on it); the command is never restarted.
//   - --refresh leases, --on-file-change restart: the command is
//     restarted with the new files at each re-issue.
//
// No PEM, body value or serial's certificate reaches secrets-init's
// output at debug level.
func TestReissue(t *testing.T) {
	for _, c := range []struct{ name, refresh, action string }{
		{"leases HUP", "leases", "HUP"},
		{"10s HUP", "10s", "HUP"},
		{"leases restart", "leases", "restart"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reissue(t, c.refresh, c.action)
		})
	}
}

// reissues is how many re-issues each case waits for.
const reissues = 3

func reissue(t *testing.T, refresh, action string) {
	s := newServer(t)
	_, tok := s.setupCA(t, "2h")
	s.write(t, "pki/roles/short", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "ttl": "30s", "max_ttl": "30s", "key_type": "ec", "key_bits": 256})
	s.requests()
	dir := t.TempDir()
	log := filepath.Join(dir, "events")
	body := `{"common_name":"svc.example.com"}`
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--refresh", refresh, "--on-file-change", action, "--log-level", "debug", "--stop-timeout", "20s", "--", self)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "VAULT_ADDR=" + s.proxy, "VAULT_TOKEN=" + tok,
		childVar + "=reader", "EVENTS=" + log,
		"TLS_CERT=>>vault:pki/issue/short#certificate#" + body + "?file",
		"TLS_KEY=>>vault:pki/issue/short#private_key#" + body + "?file",
		"TLS_CA=>>vault:pki/issue/short#issuing_ca#" + body + "?file",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	// serials lists the distinct serials the command saw, in order.
	serials := func(evs []event) []string {
		var seen []string
		for _, e := range evs {
			if (e.kind == "read" || e.kind == "start" || e.kind == "hup") && !slices.Contains(seen, e.detail) {
				seen = append(seen, e.detail)
			}
		}
		return seen
	}
	countKind := func(evs []event, kind string) int {
		n := 0
		for _, e := range evs {
			if e.kind == kind {
				n++
			}
		}
		return n
	}
	diag := func() string {
		b, _ := os.ReadFile(log)
		evs := string(b)
		if len(evs) > 4000 { // the reads: keep the last ones
			evs = "…" + evs[len(evs)-4000:]
		}
		return fmt.Sprintf("issued %q\nevents:\n%s\nsecrets-init:\n%s", s.issued(), evs, out.String())
	}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		evs := events(log)
		done := len(serials(evs)) > reissues
		if action == "HUP" {
			done = done && countKind(evs, "hup") >= reissues
		} else {
			done = done && countKind(evs, "start") > reissues
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never saw %d re-issues\n%s", reissues, diag())
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("secrets-init: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("secrets-init did not exit on SIGTERM\n%s", diag())
	}

	evs := events(log)
	seen := serials(evs)
	issued := s.issued()
	reqs := s.requests()
	// One issue per generation, shared by the three variables: every
	// certificate issued was seen, in order (the last one may have been
	// issued as secrets-init was told to stop).
	// Nothing else is asked of Vault but the token's lookup and renewals
	// (the write is never polled, also with --refresh 10s).
	if n := count(reqs, "PUT", "/v1/pki/issue/short"); n != len(issued) {
		t.Errorf("%d issue calls for %d certificates: %v", n, len(issued), reqs)
	}
	for _, r := range reqs {
		if r.path != "/v1/pki/issue/short" && !strings.HasPrefix(r.path, "/v1/auth/token/") {
			t.Errorf("a request other than the issue and the token's: %s %s", r.method, r.path)
		}
	}
	if len(issued) < len(seen) || len(issued) > len(seen)+1 || !slices.Equal(issued[:len(seen)], seen) {
		t.Errorf("the command saw the certificates %q, Vault issued %q: want one issue per generation, each seen", seen, issued)
	}
	for _, e := range evs {
		if e.kind == "bad" {
			t.Errorf("the reader: %s", e.detail)
		}
	}
	if reads := countKind(evs, "read"); reads < 200 {
		t.Errorf("%d reads, want 200 or more", reads)
	}
	var starts, hups []event
	for _, e := range evs {
		switch e.kind {
		case "start":
			starts = append(starts, e)
		case "hup":
			hups = append(hups, e)
		}
	}
	if action == "HUP" {
		// Never restarted; the k-th HUP finds the k-th new certificate:
		// the files had switched before the signal.
		if len(starts) != 1 {
			t.Errorf("%d starts, want 1 (no restart with --on-file-change HUP)", len(starts))
		}
		for k, h := range hups {
			if k+1 >= len(issued) || h.detail != issued[k+1] {
				t.Errorf("HUP %d: the command read %s, want the new certificate (issued %q)", k+1, h.detail, issued)
			}
		}
	} else {
		// Restarted at each re-issue, each start with the new files,
		// after the old command ended; never a HUP.
		if len(hups) != 0 {
			t.Errorf("%d HUPs with --on-file-change restart", len(hups))
		}
		for k, st := range starts {
			if k >= len(issued) || st.detail != issued[k] {
				t.Errorf("start %d: the command read %s, want certificate %d of %q", k+1, st.detail, k+1, issued)
			}
			if k > 0 && st.pid == starts[k-1].pid {
				t.Errorf("start %d: same pid %d", k+1, st.pid)
			}
		}
		for k := 0; k+1 < len(starts); k++ {
			term := slices.IndexFunc(evs, func(e event) bool { return e.kind == "term" && e.pid == starts[k].pid })
			next := slices.IndexFunc(evs, func(e event) bool { return e.kind == "start" && e.pid == starts[k+1].pid })
			if term < 0 || term > next {
				t.Errorf("command %d (pid %d) was not stopped before command %d started", k+1, starts[k].pid, k+2)
			}
		}
	}
	stderr := out.String()
	for _, leak := range []string{"BEGIN", "PRIVATE", "svc.example.com", "MII"} {
		if strings.Contains(stderr, leak) {
			t.Errorf("secrets-init's output holds %q:\n%s", leak, stderr)
		}
	}
	for _, want := range []string{"refresh: lease ending; reading new credentials"} {
		if c := strings.Count(stderr, want); c < reissues {
			t.Errorf("%d lines %q, want %d or more:\n%s", c, want, reissues, stderr)
		}
	}
	t.Logf("%d certificates issued, %d reads, %d HUPs, %d starts\nsecrets-init:\n%s", len(issued), countKind(evs, "read"), len(hups), len(starts), stderr)
}
