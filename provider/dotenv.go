package provider

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// ReadEnvFile reads a dotenv file: NAME=VALUE lines, an optional `export `
// prefix, `#` comments, and values that are unquoted (trimmed; a ` #`
// starts a comment), 'single-quoted' (literal) or "double-quoted" (with
// \n, \r, \t, \", \\ and \$ escapes, and able to span lines). It returns
// NAME=VALUE entries in file order.
func ReadEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer f.Close()
	env, err := ParseEnvFile(f)
	if err != nil {
		return nil, fmt.Errorf("--env-file %s: %w", path, err)
	}
	return env, nil
}

// ParseEnvFile parses dotenv text; see ReadEnvFile. Errors name the line,
// never its value.
func ParseEnvFile(r io.Reader) ([]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimLeft(strings.TrimSuffix(sc.Text(), "\r"), " \t")
		if strings.TrimSpace(text) == "" || text[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(text, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			text = strings.TrimSpace(rest)
		}
		name, value, ok := strings.Cut(text, "=")
		name = strings.TrimSpace(name)
		if !ok || !validName(name) {
			return nil, fmt.Errorf("line %d: want NAME=VALUE", line)
		}
		start := line
		value = strings.TrimLeft(value, " \t")
		switch {
		case strings.HasPrefix(value, "'"):
			end := strings.IndexByte(value[1:], '\'')
			if end < 0 || !isComment(value[end+2:]) {
				return nil, fmt.Errorf("line %d: unterminated single quote", start)
			}
			value = value[1 : end+1]
		case strings.HasPrefix(value, `"`):
			// A double-quoted value may continue on the next lines.
			raw := value[1:]
			for {
				v, rest, closed := unquote(raw)
				if closed {
					if !isComment(rest) {
						return nil, fmt.Errorf("line %d: text after the closing quote", start)
					}
					value = v
					break
				}
				if !sc.Scan() {
					return nil, fmt.Errorf("line %d: unterminated double quote", start)
				}
				line++
				raw += "\n" + strings.TrimSuffix(sc.Text(), "\r")
			}
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
	return env, sc.Err()
}

// unquote reads a double-quoted value up to its closing quote, returning
// the value, what follows the quote, and whether the quote was found.
func unquote(s string) (value, rest string, closed bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], true
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
	return "", "", false
}

// isComment reports whether s, after a closing quote, is blank or a comment.
func isComment(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || s[0] == '#'
}

// validName reports whether s is a shell-style variable name.
func validName(s string) bool {
	for i, c := range s {
		if !(c == '_' || isAlnum(c) && !(i == 0 && isDigit(c))) {
			return false
		}
	}
	return s != ""
}

// MergeEnv returns environ followed by the entries of files whose names
// environ does not set: the process environment wins over every file, and
// among files the last one that sets a name wins (as in docker compose).
func MergeEnv(environ []string, files ...[]string) []string {
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
