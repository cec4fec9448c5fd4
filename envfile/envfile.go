// Package envfile reads dotenv files, the --env-file format, and merges
// them with the process environment.
package envfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Read reads a dotenv file: NAME=VALUE lines, an optional `export `
// prefix, `#` comments, and values that are unquoted (trimmed; a ` #`
// starts a comment), 'single-quoted' (literal) or "double-quoted" (with
// \n, \r, \t, \", \\ and \$ escapes, and able to span lines). It returns
// NAME=VALUE entries in file order.
func Read(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer f.Close()
	env, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("--env-file %s: %w", path, err)
	}
	return env, nil
}

// Parse parses dotenv text; see Read. Errors name the line,
// never its value. It reads the text once, front to back.
func Parse(r io.Reader) ([]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	p := &envParser{text: strings.TrimPrefix(string(data), "\ufeff"), line: 1}
	var env []string
	for p.text != "" {
		start := p.line
		line := strings.TrimLeft(p.nextLine(), " \t")
		if strings.TrimSpace(line) == "" || line[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimLeft(rest, " \t")
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimRight(name, " \t")
		if !ok || !validName(name) {
			return nil, fmt.Errorf("line %d: want NAME=VALUE", start)
		}
		value = strings.TrimLeft(value, " \t")
		switch {
		case strings.HasPrefix(value, "'"):
			v, rest, ok := strings.Cut(value[1:], "'")
			if !ok || !isComment(rest) {
				return nil, fmt.Errorf("line %d: unterminated single quote", start)
			}
			value = v
		case strings.HasPrefix(value, `"`):
			// A double-quoted value may go on over the next lines.
			v, rest, err := p.unquote(value[1:])
			if err != nil || !isComment(rest) {
				return nil, fmt.Errorf("line %d: unterminated double quote or text after it", start)
			}
			value = v
		default:
			if i := strings.Index(value, " #"); i >= 0 {
				value = value[:i]
			}
			if i := strings.Index(value, "\t#"); i >= 0 {
				value = value[:i]
			}
			value = strings.TrimSpace(value)
		}
		env = append(env, name+"="+value)
	}
	return env, nil
}

// envParser holds the dotenv text still to read.
type envParser struct {
	text string
	line int // the number of the line text starts on
}

// nextLine takes the next line off the text, without its line ending.
func (p *envParser) nextLine() string {
	line, rest, found := strings.Cut(p.text, "\n")
	p.text = rest
	if found {
		p.line++
	}
	return strings.TrimSuffix(line, "\r")
}

// unquote reads a double-quoted value that starts with s (the rest of the
// current line) and may continue on the following lines, up to its
// closing quote. It returns the value and what follows the quote on its
// line.
func (p *envParser) unquote(s string) (value, rest string, err error) {
	var b strings.Builder
	for {
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '"':
				return b.String(), s[i+1:], nil
			case c == '\\' && i+1 < len(s):
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case '"', '\\', '$':
					b.WriteByte(s[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(s[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		if p.text == "" {
			return "", "", errors.New("unterminated")
		}
		b.WriteByte('\n')
		s = p.nextLine()
	}
}

// isComment reports whether s, after a closing quote, is blank or a comment.
func isComment(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || s[0] == '#'
}

// validName reports whether s is a shell-style variable name.
func validName(s string) bool {
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' && i > 0) {
			return false
		}
	}
	return s != ""
}

// Merge returns environ followed by the entries of files whose names
// environ does not set: the process environment wins over every file, and
// among files the last one that sets a name wins (as in docker compose).
func Merge(environ []string, files ...[]string) []string {
	set := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	out := append([]string(nil), environ...)
	fromFile := map[string]int{} // name → its index in out
	for _, file := range files {
		for _, kv := range file {
			name, _, _ := strings.Cut(kv, "=")
			if i, ok := fromFile[name]; ok {
				out[i] = kv
			} else if !set[name] {
				fromFile[name] = len(out)
				out = append(out, kv)
			}
		}
	}
	return out
}
