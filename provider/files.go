package provider

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files writes the values delivered with ?file. Values without a path go
// to a private 0700 directory on tmpfs (/dev/shm when there is one), which
// Remove deletes.
type Files struct {
	dir     string   // where the private directory is made (empty: /dev/shm, else $TMPDIR)
	private string   // the private directory, once made
	written []string // files written at paths the references gave
}

// Dir returns the private directory, or "" when none was made.
func (f *Files) Dir() string { return f.private }

// Write writes value atomically (see WriteAtomic) with mode 0400, at path
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
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", fmt.Errorf("?file=%s: %w", path, err)
		}
		path = abs
		f.written = append(f.written, path)
	}
	if err := WriteAtomic(path, bytes.NewReader(value), 0o400); err != nil {
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

// WriteAtomic writes what r holds to path, with mode perm: to a temporary
// file in the same directory, synced, then renamed into place, so that
// path never holds a part of it. Errors name paths, never the content.
func WriteAtomic(path string, r io.Reader, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return unwrapPath(err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("writing %s: %w", path, unwrapPath(err))
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err = io.Copy(tmp, r); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// unwrapPath drops the *PathError wrapper around the temporary file's name.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, filepath.Dir(pe.Path), pe.Err)
	}
	return err
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
