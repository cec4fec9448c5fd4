package supervisor

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestScrub(t *testing.T) {
	names := []string{"VAULT_TOKEN", "VAULT_SECRET_ID", "VAULT_ROLE_ID"}
	keep := []string{"VAULT_ROLE_ID", ""}
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"A=1\x00", "A=1\x00"},
		{"VAULT_TOKEN=s.abc\x00", "VAULT_TOKEN=\x00\x00\x00\x00\x00\x00"},
		{"A=1\x00VAULT_TOKEN=xy\x00B=2\x00", "A=1\x00VAULT_TOKEN=\x00\x00\x00B=2\x00"},
		{"VAULT_TOKEN=a\x00VAULT_TOKEN=bc\x00", "VAULT_TOKEN=\x00\x00VAULT_TOKEN=\x00\x00\x00"}, // each copy
		{"VAULT_SECRET_ID=a=b==\x00", "VAULT_SECRET_ID=\x00\x00\x00\x00\x00\x00"},               // '=' in the value
		{"VAULT_ROLE_ID=kept\x00", "VAULT_ROLE_ID=kept\x00"},                                    // passed through
		{"VAULT_TOKEN_FILE=x\x00X_VAULT_TOKEN=y\x00vault_token=z\x00", "VAULT_TOKEN_FILE=x\x00X_VAULT_TOKEN=y\x00vault_token=z\x00"},
		{"VAULT_TOKEN\x00VAULT_TOKEN=\x00=VAULT_TOKEN\x00", "VAULT_TOKEN\x00VAULT_TOKEN=\x00=VAULT_TOKEN\x00"}, // nothing to hide
		{"VAULT_TOKEN=tail", "VAULT_TOKEN=\x00\x00\x00\x00"},                                                   // no final NUL
		{"\x00\x00VAULT_TOKEN=\xff\n\x00", "\x00\x00VAULT_TOKEN=\x00\x00\x00"},
	} {
		block := []byte(tc.in)
		spans := scrub(block, names, keep)
		if string(block) != tc.want {
			t.Errorf("scrub(%q) = %q, want %q", tc.in, block, tc.want)
		}
		checkSpans(t, []byte(tc.in), block, spans)
	}
}

// checkSpans: the spans are exactly the bytes that changed, and hold only
// NULs.
func checkSpans(t *testing.T, before, after []byte, spans []span) {
	t.Helper()
	inSpan := make([]bool, len(before))
	for _, s := range spans {
		for i := s.from; i < s.to; i++ {
			inSpan[i] = true
			if after[i] != 0 {
				t.Fatalf("byte %d of a scrubbed span is %#x", i, after[i])
			}
		}
	}
	for i := range before {
		if !inSpan[i] && before[i] != after[i] {
			t.Fatalf("byte %d changed outside the spans", i)
		}
	}
}

func FuzzScrub(f *testing.F) {
	f.Add([]byte("A=1\x00VAULT_TOKEN=xy\x00B=2\x00VAULT_JWT=e.y.z"))
	f.Add([]byte("VAULT_TOKEN\x00=\x00VAULT_ROLE_ID=k\x00\x00"))
	names := []string{"VAULT_TOKEN", "VAULT_JWT", "VAULT_ROLE_ID"}
	keep := []string{"VAULT_ROLE_ID"}
	f.Fuzz(func(t *testing.T, in []byte) {
		block := bytes.Clone(in)
		spans := scrub(block, names, keep)
		if len(block) != len(in) {
			t.Fatal("the block changed size")
		}
		checkSpans(t, in, block, spans)
		// No entry named in names (and not kept) has a value left.
		for _, entry := range bytes.Split(block, []byte{0}) {
			name, value, ok := bytes.Cut(entry, []byte("="))
			if ok && len(name) > 0 && len(value) > 0 && slices.Contains(names, string(name)) && !slices.Contains(keep, string(name)) {
				t.Fatalf("entry %q kept its value", entry)
			}
		}
		// A second pass finds nothing more to do.
		if again := scrub(block, names, keep); len(again) != 0 {
			t.Fatalf("a second scrub changed %v", again)
		}
	})
}

func TestEnvRange(t *testing.T) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	start, end, err := envRange(stat)
	if err != nil {
		t.Fatal(err)
	}
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Fatal(err)
	}
	if got := end - start; got != uint64(len(environ)) {
		t.Errorf("env_end-env_start = %d, /proc/self/environ has %d bytes", got, len(environ))
	}

	fields := make([]string, 49) // fields 3..51
	for i := range fields {
		fields[i] = fmt.Sprint(i + 3)
	}
	fields[47], fields[48] = "4096", "4200"
	line := "12 (a) (b c)) " + strings.Join(fields, " ") + " 0\n"
	if start, end, err := envRange([]byte(line)); err != nil || start != 4096 || end != 4200 {
		t.Errorf("envRange(%q) = %d, %d, %v; want 4096, 4200", line, start, end, err)
	}
	for _, bad := range []string{
		"",
		"12 (a R 1 2",
		strings.Replace(line, "4200", "4000", 1), // end before start
		strings.Replace(line, "4096", "-1", 1),   // not a number
		strings.Replace(line, "4096 4200", "0 0", 1), // not permitted: the kernel shows zeros
		line[:len(line)/2],                           // cut short
	} {
		if _, _, err := envRange([]byte(bad)); err == nil {
			t.Errorf("envRange(%q): no error", bad)
		}
	}
}

func FuzzEnvRange(f *testing.F) {
	if stat, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(stat)
	}
	f.Add([]byte("1 (x) S"))
	f.Fuzz(func(t *testing.T, stat []byte) {
		start, end, err := envRange(stat)
		if err == nil && (start == 0 || end < start || end-start > maxEnvBlock) {
			t.Fatalf("envRange accepted %#x-%#x", start, end)
		}
	})
}

const helperEnv = "SUPERVISOR_TEST_SCRUB_HELPER"

// TestScrubEnviron runs ScrubEnviron in a process of its own (this test
// binary again, as TestScrubEnvironHelper), since it rewrites the
// environment block of the process that calls it.
func TestScrubEnviron(t *testing.T) {
	if _, err := os.Stat("/proc/self/mem"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	env := []string{
		helperEnv + "=1",
		"PATH=/usr/bin:/bin",
		"VAULT_TOKEN=canary-token-7f3a",
		"VAULT_SECRET_ID=canary-secret-id-c41d",
		"VAULT_ROLE_ID=passed-through-role-id",
		"OTHER=plain value=with=equals",
		"VAULT_TOKEN=canary-second-copy-9e2b",
	}
	// os.StartProcess, not os/exec, which would drop the first VAULT_TOKEN.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.StartProcess(os.Args[0], []string{os.Args[0], "-test.run=^TestScrubEnvironHelper$"},
		&os.ProcAttr{Env: env, Files: []*os.File{nil, w, w}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	r.Close()
	if st, err := p.Wait(); err != nil || !st.Success() {
		t.Fatalf("helper: %v %v\n%s", st, err, out)
	}
	var environ []byte
	for _, line := range strings.Split(string(out), "\n") {
		if hexed, ok := strings.CutPrefix(line, "environ "); ok {
			if environ, err = hex.DecodeString(hexed); err != nil {
				t.Fatal(err)
			}
		}
	}
	if environ == nil {
		t.Fatalf("the helper printed no environ line:\n%s", out)
	}
	var want []byte
	for _, kv := range env {
		if name, value, _ := strings.Cut(kv, "="); name == "VAULT_TOKEN" || name == "VAULT_SECRET_ID" {
			kv = name + "=" + strings.Repeat("\x00", len(value))
		}
		want = append(append(want, kv...), 0)
	}
	if !bytes.Equal(environ, want) {
		t.Errorf("/proc/self/environ after ScrubEnviron:\n%q\nwant\n%q", environ, want)
	}
	if bytes.Contains(out, []byte("canary")) {
		t.Errorf("a scrubbed value is in the helper's output:\n%s", out)
	}
	if !strings.Contains(string(out), "dumpable 0") {
		t.Errorf("the helper is still dumpable:\n%s", out)
	}
}

// TestScrubEnvironHelper is the process side of TestScrubEnviron.
func TestScrubEnvironHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("run by TestScrubEnviron")
	}
	before := os.Environ()
	if err := ScrubEnviron([]string{"VAULT_TOKEN", "VAULT_SECRET_ID", "VAULT_ROLE_ID"}, []string{"VAULT_ROLE_ID"}); err != nil {
		t.Fatal(err)
	}
	// Go's copy of the environment is untouched (it is compared here, not
	// printed: it holds the canaries).
	if after := os.Environ(); !slices.Equal(before, after) {
		t.Errorf("os.Environ changed: %d variables before, %d after", len(before), len(after))
	}
	if os.Getenv("VAULT_SECRET_ID") != "canary-secret-id-c41d" || os.Getenv("OTHER") != "plain value=with=equals" {
		t.Error("os.Getenv no longer returns the values the process started with")
	}
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Fatal(err)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("environ %x\ndumpable %d\n", environ, d)
}

// BenchmarkScrubSelf is ScrubEnviron's cost on the pass-through path: read
// /proc/self/stat and the block, find nothing to scrub. (Each variable to
// scrub adds one pwrite, and the block is read back once.)
func BenchmarkScrubSelf(b *testing.B) {
	names := []string{"SUPERVISOR_BENCH_NOT_SET_1", "SUPERVISOR_BENCH_NOT_SET_2"}
	for b.Loop() {
		if err := scrubSelf(names, nil); err != nil {
			b.Fatal(err)
		}
	}
}
