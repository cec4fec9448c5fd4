// Package doccheck finds relative links in Markdown files that point at
// nothing: a file or directory that the repository does not hold, or an
// #anchor that no heading of the target file makes (with GitHub's rules for
// heading anchors). Its test runs it on the repository's own *.md files.
package doccheck

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// A Problem is a link that points at nothing.
type Problem struct {
	File string // the Markdown file, relative to the root
	Line int
	Link string
	Why  string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Link, p.Why)
}

// Files lists the files of the repository at root, slash-separated and
// relative to it: the files git tracks (and that are still on disk), or,
// where git cannot tell (no git, not a repository), every file under root
// outside hidden directories.
func Files(root string) ([]string, error) {
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err == nil {
		var files []string
		for _, f := range strings.Split(string(out), "\x00") {
			if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f))); f != "" && err == nil {
				files = append(files, f)
			}
		}
		return files, nil
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files, err
}

// Check reads the Markdown files (*.md) among files, which are relative
// to root, and returns the relative links in them that point at nothing.
// A link may point at any of files, at a directory that holds one of them,
// and at a heading's anchor in a Markdown file.
func Check(root string, files []string) ([]Problem, error) {
	exists := map[string]bool{".": true}
	for _, f := range files {
		exists[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			exists[d] = true
		}
	}
	anchors := map[string]map[string]bool{} // Markdown file → its anchors
	texts := map[string]string{}
	for _, f := range files {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		texts[f] = string(b)
		anchors[f] = Anchors(string(b))
	}
	var problems []Problem
	for _, f := range files {
		text, ok := texts[f]
		if !ok {
			continue
		}
		for _, l := range Links(text) {
			if why := check(f, l.Dest, exists, anchors); why != "" {
				problems = append(problems, Problem{File: f, Line: l.Line, Link: l.Dest, Why: why})
			}
		}
	}
	return problems, nil
}

var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// check returns why dest, a link in file, points at nothing ("" when it
// points at something or is not relative).
func check(file, dest string, exists map[string]bool, anchors map[string]map[string]bool) string {
	if scheme.MatchString(dest) || strings.HasPrefix(dest, "//") {
		return "" // an absolute URL
	}
	target, fragment, hasFragment := strings.Cut(dest, "#")
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	p, err := url.PathUnescape(target)
	if err != nil {
		return "bad percent-encoding"
	}
	switch {
	case p == "":
		p = file
	case strings.HasPrefix(p, "/"): // GitHub: the repository's root
		p = path.Clean(strings.TrimLeft(p, "/"))
	default:
		p = path.Join(path.Dir(file), p)
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "points outside the repository"
	}
	if !exists[p] {
		return "no such file or directory: " + p
	}
	if !hasFragment || fragment == "" {
		return ""
	}
	a, isMarkdown := anchors[p]
	if !isMarkdown {
		return "" // line anchors of source files and the like are not checked
	}
	frag, err := url.PathUnescape(fragment)
	if err != nil {
		return "bad percent-encoding"
	}
	if a[frag] || a[strings.ToLower(frag)] {
		return ""
	}
	return fmt.Sprintf("no heading with anchor #%s in %s", frag, p)
}

// A Link is the destination of a link and the line it is on.
type Link struct {
	Line int
	Dest string
}

var (
	// [text](dest "title") and ![alt](dest); the text may span lines.
	inlineLink = regexp.MustCompile(`!?\[([^\]]*)\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)`)
	// [label]: dest
	refDef = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	// href="dest" and src="dest" in HTML
	htmlLink = regexp.MustCompile(`\b(?:href|src)\s*=\s*"([^"]*)"`)
)

// Links returns the link destinations of a Markdown text, outside code
// blocks and code spans.
func Links(md string) []Link {
	text := blankCode(md)
	var links []Link
	add := func(at int, dest string) {
		dest = strings.TrimSuffix(strings.TrimPrefix(dest, "<"), ">")
		links = append(links, Link{Line: 1 + strings.Count(text[:at], "\n"), Dest: dest})
	}
	for _, m := range inlineLink.FindAllStringSubmatchIndex(text, -1) {
		add(m[0], text[m[4]:m[5]])
	}
	for _, re := range []*regexp.Regexp{refDef, htmlLink} {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			add(m[0], text[m[2]:m[3]])
		}
	}
	return links
}

// blankCode replaces the contents of fenced code blocks and code spans
// with spaces, keeping the text's length and line breaks.
func blankCode(md string) string {
	lines := strings.SplitAfter(md, "\n")
	var fence string
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " \t")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]+" \t\r\n") == "" {
				fence = ""
			}
			lines[i] = blank(l)
			continue
		}
		if f := fenceOf(trimmed); f != "" {
			fence = f
			lines[i] = blank(l)
		}
	}
	return blankSpans(strings.Join(lines, ""))
}

// fenceOf returns the fence a line opens (``` or ~~~ or longer), or "".
func fenceOf(line string) string {
	for _, c := range []string{"`", "~"} {
		n := len(line) - len(strings.TrimLeft(line, c))
		if n >= 3 {
			return strings.Repeat(c, n)
		}
	}
	return ""
}

// blankSpans blanks code spans: a run of backticks up to the next run of
// the same length.
func blankSpans(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		n := 1
		for i+n < len(b) && b[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(b); {
			if b[j] != '`' {
				j++
				continue
			}
			m := 1
			for j+m < len(b) && b[j+m] == '`' {
				m++
			}
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 {
			i += n
			continue
		}
		for k := i; k < end; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		i = end
	}
	return string(b)
}

func blank(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, s)
}

var (
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextLine = regexp.MustCompile(`^ {0,3}(?:=+|-+)[ \t]*$`)
	htmlAnchor = regexp.MustCompile(`<a\s[^>]*\b(?:name|id)\s*=\s*"([^"]+)"`)
)

// Anchors returns the anchors a Markdown file has on GitHub: one per
// heading (see Slug; a repeated one gets -1, -2, …), and the name= and id=
// of HTML anchors.
func Anchors(md string) map[string]bool {
	anchors := map[string]bool{}
	add := func(heading string) {
		s := Slug(heading)
		for i, base := 1, s; anchors[s]; i++ {
			s = fmt.Sprintf("%s-%d", base, i)
		}
		anchors[s] = true
	}
	lines := strings.Split(md, "\n")
	var fence string
	for i, l := range lines {
		l = strings.TrimRight(l, "\r")
		trimmed := strings.TrimLeft(l, " \t")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]+" \t") == "" {
				fence = ""
			}
			continue
		}
		if fence = fenceOf(trimmed); fence != "" {
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(l, -1) {
			anchors[m[1]] = true
		}
		if m := atxHeading.FindStringSubmatch(l); m != nil {
			add(m[1])
			continue
		}
		// A setext heading: a paragraph line underlined with = or -.
		if i > 0 && setextLine.MatchString(l) {
			prev := strings.TrimSpace(lines[i-1])
			if prev != "" && !strings.HasPrefix(prev, "#") && !strings.HasPrefix(prev, "|") &&
				!strings.HasPrefix(prev, "- ") && !strings.HasPrefix(prev, "* ") && fenceOf(prev) == "" {
				add(prev)
			}
		}
	}
	return anchors
}

var (
	mdLink    = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag   = regexp.MustCompile(`<[^>]+>`)
	emphasis  = regexp.MustCompile(`(\*+|\b__+|__+\b)`)
	backticks = regexp.MustCompile("`+")
)

// Slug is the anchor GitHub gives a heading: its rendered text (links and
// images by their text, no code or emphasis markers, no HTML tags), lower
// case, with every character that is not a letter, a mark, a digit, '_',
// '-' or a space removed, and each space made a '-'.
func Slug(heading string) string {
	s := mdLink.ReplaceAllString(heading, "$1")
	s = htmlTag.ReplaceAllString(s, "")
	s = backticks.ReplaceAllString(s, "")
	s = emphasis.ReplaceAllString(s, "")
	s = strings.ToLower(strings.TrimSpace(s))
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
