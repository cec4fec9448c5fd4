package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// refreshConfig resolves secretfile: references for refresh, with a
// (test-only, unkeyed) fingerprint.
func refreshConfig(t *testing.T) Config {
	cfg := config(t, newMem(nil))
	cfg.Refresh = true
	cfg.Fingerprint = func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:4]) }
	return cfg
}

func write(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func envOf(env []string, name string) string {
	for _, kv := range env {
		if n, v, _ := strings.Cut(kv, "="); n == name {
			return v
		}
	}
	return "<unset>"
}

func readFileT(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRefetchCommit(t *testing.T) {
	dir := t.TempDir()
	tls, db, plain := filepath.Join(dir, "tls.json"), filepath.Join(dir, "db"), filepath.Join(dir, "pin")
	write(t, tls, `{"cert":"C1","key":"K1"}`)
	write(t, db, "pw1")
	write(t, plain, "same")
	outFile := filepath.Join(dir, "out.key")
	cfg := refreshConfig(t)
	res, err := resolve(t, cfg,
		"CERT=secretfile:"+tls+"#cert?file", "KEY=secretfile:"+tls+"#key?file", "KEY2=secretfile:"+tls+"#key?file="+outFile,
		"DB=secretfile:"+db, "SAME=secretfile:"+plain, "OPT=secretfile:"+filepath.Join(dir, "later")+"?optional", "X=y")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Files.Remove() })
	certPath, keyPath := envOf(res.Env, "CERT"), envOf(res.Env, "KEY")
	if readFileT(t, certPath) != "C1" || readFileT(t, keyPath) != "K1" || readFileT(t, outFile) != "K1" {
		t.Fatal("first delivery")
	}
	if link, err := os.Readlink(certPath); err != nil || link != filepath.Join(dataLink, "CERT") {
		t.Errorf("%s -> %q, %v; want a symlink into %s", certPath, link, err, dataLink)
	}
	targets := res.Targets()
	if len(targets) != 4 || targets[0].Fingerprint == "" {
		t.Fatalf("Targets: %+v", targets)
	}
	var all []Target
	for _, s := range targets {
		all = append(all, s.Ref.Target)
	}

	// Nothing changed: nothing staged, nothing committed.
	if _, err := res.Refetch(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	if st := res.Staged(); len(st) != 0 {
		t.Errorf("staged with no change: %+v", st)
	}
	if ch, err := res.Commit(); err != nil || len(ch) != 0 {
		t.Errorf("Commit with no change: %v, %v", ch, err)
	}

	// The pair, the env value, and a new optional one change.
	write(t, tls, `{"cert":"C2","key":"K2"}`)
	write(t, db, "pw2")
	write(t, filepath.Join(dir, "later"), "now")
	fetched, err := res.Refetch(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	if fetched[0].Fingerprint == targets[0].Fingerprint || fetched[2].Fingerprint != targets[2].Fingerprint {
		t.Errorf("fingerprints: before %+v after %+v", targets, fetched)
	}
	if readFileT(t, certPath) != "C1" || envOf(res.Env, "DB") != "pw1" {
		t.Error("Refetch delivered before Commit")
	}
	var names []string
	for _, c := range res.Staged() {
		names = append(names, c.Name)
	}
	if want := []string{"CERT", "KEY", "KEY2", "DB", "OPT"}; !slices.Equal(names, want) {
		t.Errorf("Staged = %q, want %q", names, want)
	}
	ch, err := res.Commit()
	if err != nil || len(ch) != 5 {
		t.Fatalf("Commit = %+v, %v", ch, err)
	}
	if envOf(res.Env, "CERT") != certPath || envOf(res.Env, "KEY") != keyPath {
		t.Error("a ?file path changed")
	}
	if readFileT(t, certPath) != "C2" || readFileT(t, keyPath) != "K2" || readFileT(t, outFile) != "K2" ||
		envOf(res.Env, "DB") != "pw2" || envOf(res.Env, "OPT") != "now" || envOf(res.Env, "X") != "y" {
		t.Errorf("after Commit: %q", res.Env)
	}

	// A failure (the key is gone from the JSON) stages nothing.
	write(t, tls, `{"cert":"C3"}`)
	write(t, db, "pw3")
	_, err = res.Refetch(context.Background(), all)
	var f *Failure
	if !errors.As(err, &f) || len(f.Vars) != 2 || !strings.Contains(err.Error(), `JSON key "key" not in secret`) {
		t.Fatalf("Refetch = %v", err)
	}
	if len(res.Staged()) != 0 || readFileT(t, certPath) != "C2" {
		t.Error("a failed round staged or delivered values")
	}

	// Deleted files keep their values.
	os.Remove(tls)
	os.Remove(db)
	fetched, err = res.Refetch(context.Background(), all)
	if err != nil || !fetched[0].Deleted || !fetched[1].Deleted || fetched[2].Deleted {
		t.Fatalf("Refetch after deletion = %+v, %v", fetched, err)
	}
	if len(res.Staged()) != 0 {
		t.Error("a deletion staged a change")
	}
}

// TestFilesSwitchAsOneSet reads a certificate and its key through one
// resolved directory while the pair changes many times: never a pair of
// two generations.
func TestFilesSwitchAsOneSet(t *testing.T) {
	dir := t.TempDir()
	tls := filepath.Join(dir, "tls.json")
	write(t, tls, `{"cert":"0","key":"0"}`)
	res, err := resolve(t, refreshConfig(t), "CERT=secretfile:"+tls+"#cert?file", "KEY=secretfile:"+tls+"#key?file")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Files.Remove() })
	certPath, keyPath := envOf(res.Env, "CERT"), envOf(res.Env, "KEY")
	var stop atomic.Bool
	var reads, torn atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			real, err := filepath.EvalSymlinks(certPath)
			if err != nil {
				continue
			}
			c, err1 := os.ReadFile(real)
			k, err2 := os.ReadFile(filepath.Join(filepath.Dir(real), filepath.Base(keyPath)))
			if err1 != nil || err2 != nil {
				continue // a generation two switches old, removed meanwhile
			}
			reads.Add(1)
			if string(c) != string(k) {
				torn.Add(1)
			}
		}
	})
	targets := []Target{res.Targets()[0].Ref.Target}
	for i := 1; i <= 200; i++ {
		n := strings.Repeat("x", i)
		write(t, tls, `{"cert":"`+n+`","key":"`+n+`"}`)
		if _, err := res.Refetch(context.Background(), targets); err != nil {
			t.Fatal(err)
		}
		if ch, err := res.Commit(); err != nil || len(ch) != 2 {
			t.Fatalf("Commit %d: %v, %v", i, ch, err)
		}
		if got := readFileT(t, keyPath); got != n {
			t.Fatalf("switch %d: key %q", i, got)
		}
	}
	stop.Store(true)
	wg.Wait()
	if torn.Load() != 0 {
		t.Errorf("%d of %d reads saw a torn pair", torn.Load(), reads.Load())
	}
	gens, _ := filepath.Glob(filepath.Join(res.Files.Dir(), "..gen-*"))
	if len(gens) > 2 {
		t.Errorf("%d generations left, want at most 2", len(gens))
	}
	t.Logf("%d consistent reads across 200 switches", reads.Load())
}

// --expand-json: a refreshed JSON object gives the new set of variables.
func TestRefetchExpandJSON(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db.json")
	write(t, db, `{"USER":"app","PASSWORD":"`+canary+`"}`)
	cfg := refreshConfig(t)
	cfg.ExpandJSON = true
	res, err := resolve(t, cfg, "DB=secretfile:"+db, "USER=explicit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Files.Remove() })
	write(t, db, `{"USER":"app","PASSWORD":"new","PORT":5432}`)
	if _, err := res.Refetch(context.Background(), []Target{res.Targets()[0].Ref.Target}); err != nil {
		t.Fatal(err)
	}
	if ch, err := res.Commit(); err != nil || len(ch) != 1 || ch[0].Name != "DB" {
		t.Fatalf("Commit = %+v, %v", ch, err)
	}
	if envOf(res.Env, "PASSWORD") != "new" || envOf(res.Env, "PORT") != "5432" || envOf(res.Env, "USER") != "explicit" || envOf(res.Env, "DB") != "<unset>" {
		t.Errorf("expanded after Commit: %q", res.Env)
	}
}
