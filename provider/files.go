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
type Files struct {
	dir     string   // where the private directory is made (empty: /dev/shm, else $TMPDIR)
	private string   // the private directory, once made
	written []string // files written at paths the references gave
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
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", fmt.Errorf("?file=%s: %w", path, err)
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
