package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// ScrubEnviron hides the variables named in names (except those in keep)
// from the process's exec-time environment block: the bytes that
// /proc/<pid>/environ shows, which os.Unsetenv never touches. Each such
// entry NAME=VALUE is rewritten in place as NAME= followed by NUL bytes,
// one per byte of VALUE, through /proc/self/mem between env_start and
// env_end of /proc/self/stat. Nothing moves, so any pointer into the block
// (C's environ, in a cgo build) sees NAME with an empty value. Go's own
// copy of the environment (os.Getenv, os.Environ) is unaffected: the
// runtime copied the block at start.
//
// Then it marks the process non-dumpable (PR_SET_DUMPABLE 0): a process
// without CAP_SYS_PTRACE can no longer open its /proc/<pid>/environ, mem
// or maps, whatever its uid. A command started after this call gets the
// normal dumpable flag back from execve.
//
// It is done even when the scrub fails; the error says what failed and
// holds no byte of any value. A failed scrub is no error when none of the
// variables is set (as far as os.LookupEnv knows): then there was nothing
// to hide, for instance where /proc is not mounted.
func ScrubEnviron(names, keep []string) error {
	var errs []error
	if err := scrubSelf(names, keep); err != nil && anySet(names, keep) {
		errs = append(errs, fmt.Errorf("environment block: %w", err))
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		errs = append(errs, fmt.Errorf("PR_SET_DUMPABLE: %w", err))
	}
	return errors.Join(errs...)
}

// anySet reports whether a variable in names and not in keep is set.
func anySet(names, keep []string) bool {
	for _, name := range names {
		if _, ok := os.LookupEnv(name); ok && name != "" && !slices.Contains(keep, name) {
			return true
		}
	}
	return false
}

func scrubSelf(names, keep []string) error {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return err
	}
	start, end, err := envRange(stat)
	if err != nil {
		return err
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, int64(start)); err != nil {
		return fmt.Errorf("reading %d bytes at %#x: %w", len(block), start, err)
	}
	spans := scrub(block, names, keep)
	for _, s := range spans {
		if _, err := mem.WriteAt(block[s.from:s.to], int64(start)+int64(s.from)); err != nil {
			return fmt.Errorf("writing %d bytes at %#x: %w", s.to-s.from, start+uint64(s.from), err)
		}
	}
	if len(spans) == 0 {
		return nil
	}
	// Read back: a kernel (or sandbox) that ignores the writes must not
	// pass for one that took them.
	check := make([]byte, len(block))
	if _, err := mem.ReadAt(check, int64(start)); err != nil {
		return fmt.Errorf("reading back: %w", err)
	}
	if !bytes.Equal(check, block) {
		return errors.New("the block is unchanged after writing to /proc/self/mem")
	}
	return nil
}

// maxEnvBlock bounds the block ScrubEnviron reads: far more than execve
// accepts with any usual stack limit; past it, /proc/self/stat is not
// believed.
const maxEnvBlock = 1 << 30

// envRange parses env_start and env_end (fields 50 and 51, see proc(5))
// out of /proc/self/stat. The fields are counted after the last ')', since
// the command name, field 2, may hold spaces and parentheses.
func envRange(stat []byte) (start, end uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc/self/stat: no ')' after the command name")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3
	const envStart, envEnd = 50 - 3, 51 - 3
	if len(f) <= envEnd {
		return 0, 0, fmt.Errorf("/proc/self/stat has %d fields; env_start and env_end need Linux 3.5", len(f)+2)
	}
	if start, err = strconv.ParseUint(string(f[envStart]), 10, 64); err == nil {
		end, err = strconv.ParseUint(string(f[envEnd]), 10, 64)
	}
	switch {
	case err != nil:
		return 0, 0, fmt.Errorf("/proc/self/stat: env_start, env_end: %w", err)
	case start == 0 || end < start || end-start > maxEnvBlock || end > 1<<63-1:
		return 0, 0, fmt.Errorf("/proc/self/stat: odd environment block %#x-%#x", start, end)
	}
	return start, end, nil
}

// span is a range of bytes of the block that scrub rewrote.
type span struct{ from, to int }

// scrub overwrites with NUL, in block (NUL-separated NAME=VALUE entries),
// the value of every entry whose NAME is in names and not in keep, and
// returns the ranges it changed. An entry may appear more than once; each
// is scrubbed. Entries with no '=' are left as they are.
func scrub(block []byte, names, keep []string) []span {
	var spans []span
	for pos := 0; pos < len(block); {
		n := bytes.IndexByte(block[pos:], 0)
		if n < 0 {
			n = len(block) - pos // the last entry has lost its NUL
		}
		entry := block[pos : pos+n]
		if eq := bytes.IndexByte(entry, '='); eq > 0 && eq < len(entry)-1 {
			name := string(entry[:eq])
			if slices.Contains(names, name) && !slices.Contains(keep, name) {
				value := entry[eq+1:]
				clear(value)
				spans = append(spans, span{pos + eq + 1, pos + n})
			}
		}
		pos += n + 1
	}
	return spans
}
