package provider

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/secrets-init/secrets-init/internal/atomicfile"
)

// Files writes the values delivered with ?file. Values without a path go
// to a private 0700 directory on tmpfs (/dev/shm when there is one), which
// Remove deletes.
//
// With refresh (switch set), the private files change as one set, as
// Kubernetes changes a mounted Secret: each generation is a directory
// ..gen-N, the symlink ..data points to the current one and is replaced by
// rename(2), and each variable's path is a symlink NAME -> ..data/NAME that
// never changes. A reader that resolves ..data once (or opens the files
// through one resolved directory) never sees files of two generations.
type Files struct {
	dir     string   // where the private directory is made (empty: /dev/shm, else $TMPDIR)
	private string   // the private directory, once made
	written []string // files written at paths the references gave

	switchSet bool            // the private files are a set behind ..data
	gen       int             // the current generation; 0 before the first set
	taken     map[string]bool // base names in use in the private directory
}

// dataLink is the directory symlink that points to the current set.
const dataLink = "..data"

// reserve picks the base name of a private file for variable name and
// returns its path, which never changes.
func (f *Files) reserve(name string) (string, error) {
	dir, err := f.privateDir()
	if err != nil {
		return "", err
	}
	if f.taken == nil {
		f.taken = map[string]bool{}
	}
	base := fileName(name)
	for i := 2; f.taken[base] || base == dataLink || strings.HasPrefix(base, "..gen-"); i++ {
		base = fmt.Sprintf("%s-%d", fileName(name), i)
	}
	f.taken[base] = true
	return filepath.Join(dir, base), nil
}

// writeSet writes one generation of private files (path, as reserve gave
// it, → content) and switches ..data to it at once. The previous
// generation stays for readers that are still in it; older ones go.
func (f *Files) writeSet(set map[string][]byte) error {
	dir, err := f.privateDir()
	if err != nil {
		return err
	}
	gen := filepath.Join(dir, fmt.Sprintf("..gen-%d", f.gen+1))
	if err := os.Mkdir(gen, 0o700); err != nil {
		return fmt.Errorf("?file: %w", err)
	}
	fail := func(err error) error {
		os.RemoveAll(gen)
		return fmt.Errorf("?file: %w", err)
	}
	for path, content := range set {
		if err := writeNew(filepath.Join(gen, filepath.Base(path)), content); err != nil {
			return fail(err)
		}
	}
	tmp := filepath.Join(dir, dataLink+".tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		os.Remove(tmp)
		return fail(err)
	}
	f.gen++
	for path := range set {
		link := filepath.Join(dataLink, filepath.Base(path))
		if cur, err := os.Readlink(path); err == nil && cur == link {
			continue
		}
		if err := os.Symlink(link, path); err != nil {
			return fmt.Errorf("?file: %w", err)
		}
	}
	if f.gen > 2 {
		os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..gen-%d", f.gen-2)))
	}
	return nil
}

// writeNew creates path with content, mode 0400, and syncs it.
func writeNew(path string, content []byte) error {
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return err
	}
	_, err = fd.Write(content)
	if err == nil {
		err = fd.Sync()
	}
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	return err
}

// Dir returns the private directory, or "" when none was made.
func (f *Files) Dir() string { return f.private }

// Write writes value atomically (see atomicfile.Write) with mode 0400, at path
// or, when path is empty, in the private directory under the variable's
// name. It returns the file's path.
func (f *Files) Write(name, path string, value []byte) (string, error) {
	if path == "" {
		dir, err := f.privateDir()
		if err != nil {
			return "", err
		}
		path = filepath.Join(dir, fileName(name))
		for i := 2; exists(path); i++ {
			path = filepath.Join(dir, fmt.Sprintf("%s-%d", fileName(name), i))
		}
	} else {
		abs, err := filePath(path)
		if err != nil {
			return "", err
		}
		path = abs
		f.written = append(f.written, path)
	}
	if err := atomicfile.Write(path, bytes.NewReader(value), 0o400); err != nil {
		return "", fmt.Errorf("?file: %w", err)
	}
	return path, nil
}

func (f *Files) privateDir() (string, error) {
	if f.private != "" {
		return f.private, nil
	}
	bases := []string{f.dir}
	if f.dir == "" {
		bases = []string{"/dev/shm", os.TempDir()}
	}
	var err error
	for _, base := range bases {
		var dir string
		if dir, err = os.MkdirTemp(base, "secrets-init-"); err == nil {
			f.private = dir
			return dir, nil
		}
	}
	return "", fmt.Errorf("?file: cannot make a private directory: %w", err)
}

// Remove deletes the private directory and what it holds.
func (f *Files) Remove() error {
	if f.private == "" {
		return nil
	}
	err := os.RemoveAll(f.private)
	f.private = ""
	return err
}

// rollback removes every file written, after a failed resolution.
func (f *Files) rollback() {
	for _, p := range f.written {
		os.Remove(p)
	}
	f.written = nil
	f.Remove()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// fileName makes a variable's name safe as a file name.
func fileName(name string) string {
	s := strings.Map(func(c rune) rune {
		if isAlnum(c) || c == '_' || c == '-' || c == '.' {
			return c
		}
		return '_'
	}, name)
	if strings.Trim(s, ".") == "" {
		s = "_" + s
	}
	return s
}

// filePath is the absolute path of a file=PATH.
func filePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("?file=%s: %w", path, err)
	}
	return abs, nil
}
