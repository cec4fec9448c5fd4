package resolver

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secrets-init/secrets-init/provider"
)

// benchImage is the resolver executable named by RESOLVER_BENCH_EXE (a
// release build of ./cmd/secrets-init-resolver; bench/split.sh sets it).
func benchImage(b *testing.B) string {
	path := os.Getenv("RESOLVER_BENCH_EXE")
	if path == "" {
		b.Skip("RESOLVER_BENCH_EXE is not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}

// BenchmarkCopy is the part of the start that copies the executable into
// a sealed memfd.
func BenchmarkCopy(b *testing.B) {
	img := benchImage(b)
	data := []byte(img)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		fd, err := unix.MemfdCreate(memfdName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			b.Fatal(err)
		}
		if err := writeAll(fd, data); err != nil {
			b.Fatal(err)
		}
		unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
		unix.Close(fd)
	}
}

// BenchmarkStart is the resolver's whole cost to a resolution: copy,
// start (its runtime and every SDK's package initialisation), one request
// and its answer, and its exit.
func BenchmarkStart(b *testing.B) {
	img := benchImage(b)
	for _, mode := range []string{"memfd", "file"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "file" {
				b.Setenv(TestStartVariable, "file")
			}
			for b.Loop() {
				c := NewClient(img, Settings{}, []string{"PATH=/usr/bin:/bin"})
				st, err := c.Opener(provider.File)(context.Background(), provider.Settings{})
				if err != nil {
					b.Fatal(err)
				}
				rs := st.Fetch(context.Background(), []provider.Target{{Kind: provider.File, Name: "/dev/null"}})
				if rs[0].Err == nil { // the resolver serves no secretfile: a quick error
					b.Fatal("the resolver read a file")
				}
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
