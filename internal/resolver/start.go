package resolver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestStartVariable, for tests only, forces a start path: "file" skips
// the memfd, "none" refuses both ways as a locked-down system would.
const TestStartVariable = "SECRETS_INIT_TEST_RESOLVER_START"

// A StartError is a resolver that could not be started either way.
type StartError struct {
	Memfd error // executing from a memfd
	File  error // executing a file in a private directory
}

func (e *StartError) Error() string {
	return fmt.Sprintf("cannot start the resolver: executing it from a memfd was refused (%v) and so was executing it from a private directory (%v); "+
		"allow one of them (vm.memfd_noexec below 2, or a tmpfs /dev/shm or $TMPDIR without noexec), or use the single-process build (go build without the embedresolver tag)",
		e.Memfd, e.File)
}

// startImage starts the executable image: from an anonymous memory file
// (memfd) with no file on disk, else from a 0500 file in a private 0700
// directory on tmpfs, removed as soon as the process has started. mode is
// TestStartVariable's value. When drop is set, image is the embedded
// executable, and its pages are dropped from this process's memory once
// copied.
func startImage(image string, drop bool, argv []string, attr *os.ProcAttr, mode string, info *startInfo) (*os.Process, error) {
	attr.Env = withoutGC(attr.Env)
	data := unsafe.Slice(unsafe.StringData(image), len(image))
	var src *os.File // the executable holding data, to copy it from in the kernel
	if drop {
		defer dropPages(data)
		src = openSelf(data)
		if src != nil {
			defer src.Close()
		}
	}
	se := &StartError{}
	switch mode {
	case "none":
		se.Memfd = fmt.Errorf("%s=none", TestStartVariable)
		se.File = se.Memfd
		return nil, se
	case "file":
		se.Memfd = fmt.Errorf("%s=file", TestStartVariable)
	default:
		info.from = "memfd"
		p, err := startMemfd(data, src, argv, attr, info)
		if err == nil {
			return p, nil
		}
		se.Memfd = err
	}
	info.from = "file"
	p, err := startFile(data, src, argv, attr, info)
	if err == nil {
		return p, nil
	}
	se.File = err
	return nil, se
}

// GCVariable is set, to 1, in the environment of a resolver started with
// its garbage collector off (GOGC=off), as withoutGC does: its package
// initialisation allocates 4 MB, which would start a collection before
// main (1-2 ms of a 2-core machine). GOMEMLIMIT bounds that: should a
// first request's work grow the heap that far, the collector runs anyway.
// Its main unsets the three variables, and turns the collector on (and
// the limit off) once it has given its first answer
// (cmd/secrets-init-resolver).
const GCVariable = "SECRETS_INIT_RESOLVER_GC"

// startMemoryLimit is GOMEMLIMIT while the collector is off.
const startMemoryLimit = "GOMEMLIMIT=64MiB"

// withoutGC returns env with GOGC=off, a GOMEMLIMIT and GCVariable, unless
// it sets GOGC or GOMEMLIMIT already: the user's settings are then the
// resolver's too.
func withoutGC(env []string) []string {
	if env == nil { // os.StartProcess's default
		env = os.Environ()
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, GCVariable+"=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "GOGC=off", startMemoryLimit, GCVariable+"=1")
}

// memfdName is the memfd's name, as /proc/PID/exe shows it
// ("/memfd:secrets-init-resolver (deleted)").
const memfdName = "secrets-init-resolver"

// startMemfd copies the image into a sealed memfd and executes it. Go
// starts processes from a path, so it executes /proc/self/fd/N, which the
// kernel resolves to the memfd itself: what fexecve and execveat(fd, "",
// AT_EMPTY_PATH) do.
func startMemfd(data []byte, src *os.File, argv []string, attr *os.ProcAttr, info *startInfo) (*os.Process, error) {
	fd, err := unix.MemfdCreate(memfdName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // before Linux 6.3, which has no MFD_EXEC
		fd, err = unix.MemfdCreate(memfdName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd)
	if err := info.copyImage(fd, data, src); err != nil {
		return nil, fmt.Errorf("writing the memfd: %w", err)
	}
	// Nothing can change the image any more.
	unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	p, err := info.exec("/proc/self/fd/"+strconv.Itoa(fd), argv, attr)
	if err != nil {
		return nil, unwrapPath(err)
	}
	return p, nil
}

// startFile writes the image to a 0500 file in a new 0700 directory on
// tmpfs (/dev/shm, else $TMPDIR), executes it and removes both.
func startFile(data []byte, src *os.File, argv []string, attr *os.ProcAttr, info *startInfo) (*os.Process, error) {
	var errs []error
	for _, base := range []string{"/dev/shm", os.TempDir()} {
		p, err := startFileIn(base, data, src, argv, attr, info)
		if err == nil {
			return p, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", base, err))
	}
	return nil, errors.Join(errs...)
}

func startFileIn(base string, data []byte, src *os.File, argv []string, attr *os.ProcAttr, info *startInfo) (*os.Process, error) {
	dir, err := os.MkdirTemp(base, "secrets-init-")
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "resolver")
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o500)
	if err != nil {
		return nil, err
	}
	err = info.copyImage(fd, data, src)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	p, err := info.exec(path, argv, attr)
	if err != nil {
		return nil, unwrapPath(err)
	}
	return p, nil
}

// startInfo is how the resolver was started and what it took, for a
// debug line.
type startInfo struct {
	from            string        // memfd or file
	sendfile        bool          // copied in the kernel from the executable
	copied, started time.Duration // copying the executable; starting the process
}

func (i *startInfo) copyImage(fd int, data []byte, src *os.File) error {
	start := time.Now()
	err := copyImage(fd, data, src)
	i.copied, i.sendfile = time.Since(start), src != nil
	return err
}

func (i *startInfo) exec(path string, argv []string, attr *os.ProcAttr) (*os.Process, error) {
	start := time.Now()
	p, err := os.StartProcess(path, argv, attr)
	i.started = time.Since(start)
	return p, err
}

// copyImage writes data to fd: from src, the executable file data is
// mapped from, with sendfile when there is one (the kernel copies from
// the page cache, and this process touches none of the pages), else from
// memory.
func copyImage(fd int, data []byte, src *os.File) error {
	if src == nil {
		return writeAll(fd, data)
	}
	off, err := src.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	for left := len(data); left > 0; {
		n, err := unix.Sendfile(fd, int(src.Fd()), &off, left)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		left -= n
	}
	return nil
}

// openSelf opens this process's executable positioned at data, which must
// lie in one of its loaded segments, or returns nil. It reads the ELF
// program headers of a non-PIE executable (Go's default on Linux), where
// addresses are those of the file, and checks the bytes it finds.
func openSelf(data []byte) *os.File {
	if len(data) < 64 {
		return nil
	}
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil
	}
	off, ok := segmentOffset(f, uintptr(unsafe.Pointer(unsafe.SliceData(data))), len(data))
	var head [64]byte
	if ok {
		_, err = f.ReadAt(head[:], off)
	}
	if !ok || err != nil || string(head[:]) != string(data[:64]) {
		f.Close()
		return nil
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil
	}
	return f
}

// segmentOffset maps the address of n bytes to their offset in the ELF
// file f, through its PT_LOAD program headers.
func segmentOffset(f *os.File, addr uintptr, n int) (int64, bool) {
	var eh [64]byte
	if _, err := f.ReadAt(eh[:], 0); err != nil {
		return 0, false
	}
	le := binary.LittleEndian
	// 64-bit, little-endian, ET_EXEC.
	if string(eh[:4]) != "\x7fELF" || eh[4] != 2 || eh[5] != 1 || le.Uint16(eh[16:]) != 2 {
		return 0, false
	}
	phoff, phentsize, phnum := int64(le.Uint64(eh[32:])), int(le.Uint16(eh[54:])), int(le.Uint16(eh[56:]))
	if phentsize < 56 || phnum == 0 || phnum > 64 {
		return 0, false
	}
	ph := make([]byte, phentsize*phnum)
	if _, err := f.ReadAt(ph, phoff); err != nil {
		return 0, false
	}
	for i := range phnum {
		h := ph[i*phentsize:]
		if le.Uint32(h) != 1 { // PT_LOAD
			continue
		}
		offset, vaddr, filesz := le.Uint64(h[8:]), le.Uint64(h[16:]), le.Uint64(h[32:])
		a := uint64(addr)
		if a >= vaddr && a+uint64(n) <= vaddr+filesz {
			return int64(offset + a - vaddr), true
		}
	}
	return 0, false
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// unwrapPath keeps the errno of a *PathError: the path is ours and says
// nothing useful.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// dropPages tells the kernel this process no longer needs the pages of
// data, which lie in the executable's read-only mapping: they leave its
// resident set (the page cache keeps them, and a read would fault them
// back in).
func dropPages(data []byte) {
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	end := start + uintptr(len(data))
	first, last := (start+page-1)&^(page-1), end&^(page-1)
	if last > first {
		p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(data)), first-start)
		unix.Madvise(unsafe.Slice((*byte)(p), last-first), unix.MADV_DONTNEED)
	}
}
