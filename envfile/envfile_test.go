package envfile

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that the dotenv parser never panics, returns
// only NAME=VALUE entries with valid names, and reads back what it wrote
// in double quotes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"A=1\nexport B='two words'\n# comment\nC=\"multi\nline\" # note\nD=x #y\n",
		"E=\"esc \\\"q\\\" \\n \\\\ \\$\"\r\nF=a=b=c\n", "\ufeffG=bom", "bad line\n", "H='unterminated",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		var out bytes.Buffer
		for _, kv := range env {
			name, value, ok := strings.Cut(kv, "=")
			if !ok || !validName(name) {
				t.Fatalf("entry %q has no valid name", kv)
			}
			r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", `\r`)
			out.WriteString(name + "=\"" + r.Replace(value) + "\"\n")
		}
		again, err := Parse(&out)
		if err != nil {
			t.Fatalf("written back %q: %v", out.String(), err)
		}
		if strings.Join(again, "\x00") != strings.Join(env, "\x00") {
			t.Fatalf("round trip: %q became %q", env, again)
		}
	})
}

func TestMerge(t *testing.T) {
	got := Merge([]string{"A=process", "B=process"}, []string{"A=file1", "C=file1", "D=file1"}, []string{"C=file2", "B=file2", "E=file2"})
	want := []string{"A=process", "B=process", "C=file2", "D=file1", "E=file2"}
	if !slices.Equal(got, want) {
		t.Errorf("Merge = %q, want %q", got, want)
	}
}
