package doccheck

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestRepository checks every relative link of the repository's tracked
// Markdown files.
func TestRepository(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository's root is not at %s: %v", root, err)
	}
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, "README.md") {
		t.Fatalf("README.md is not among the %d files of %s", len(files), root)
	}
	problems, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Set up":                                   "set-up",
		"`check`":                                  "check",
		"Batching, concurrency and retries":        "batching-concurrency-and-retries",
		"Endpoints, emulators and proxies":         "endpoints-emulators-and-proxies",
		"1.1 Env files":                            "11-env-files",
		"7.1 `--expand-json`":                      "71---expand-json",
		"9. Decisions where SPEC was silent":       "9-decisions-where-spec-was-silent",
		"From bank-vaults vault-env / secret-init": "from-bank-vaults-vault-env--secret-init",
		"Supervision (PID 1)":                      "supervision-pid-1",
		"A **bold** [link](x.md) and <b>tag</b>":   "a-bold-link-and-tag",
		"Émigré café":                              "émigré-café",
		"snake_case_name":                          "snake_case_name",
		"  trailing  ":                             "trailing",
	} {
		if got := Slug(heading); got != want {
			t.Errorf("Slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

func TestAnchors(t *testing.T) {
	md := strings.Join([]string{
		"# Title",
		"## Errors",
		"### Errors ###",
		"```sh",
		"# not a heading",
		"```",
		"Setext",
		"======",
		"<a name=\"custom\"></a>",
		"## Errors",
		"    ~~~",
		"## inside a tilde fence",
		"    ~~~",
	}, "\n")
	got := Anchors(md)
	want := map[string]bool{"title": true, "errors": true, "errors-1": true, "errors-2": true, "setext": true, "custom": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Anchors = %v, want %v", got, want)
	}
}

func TestLinks(t *testing.T) {
	md := strings.Join([]string{
		"See [a](a.md) and [`code` text](b/c.md#x \"title\").",
		"`[not](a link)` and ``[nor `this`](one)``",
		"```",
		"[inside](fence.md)",
		"```",
		"![image](img.png) [wrapped",
		"text](d.md) <a href=\"e.md\">e</a>",
		"[ref]: f.md",
		"[angle](<g h.md>)",
	}, "\n")
	var got []Link
	got = append(got, Links(md)...)
	want := []Link{{1, "a.md"}, {1, "b/c.md#x"}, {6, "img.png"}, {6, "d.md"}, {9, "g h.md"}, {8, "f.md"}, {7, "e.md"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Links =\n%v\nwant\n%v", got, want)
	}
}

// TestCheck runs Check on a small tree with a link of every kind, good and
// broken.
func TestCheck(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", strings.Join([]string{
		"# Top",
		"## Usage",
		"[ok](#usage) [ok](docs/guide.md) [ok](docs/guide.md#the-guide) [ok](docs/) [ok](main.go#L3)",
		"[ok](https://example.com/x.md) [ok](mailto:a@b.c) [ok](/docs/guide.md#part-two) [ok](docs/my%20file.md)",
		"[bad](#nowhere) [bad](docs/missing.md) [bad](docs/guide.md#nowhere) [bad](../outside.md)",
		"[bad](untracked.md)",
	}, "\n"))
	write("docs/guide.md", "# The guide\n## Part two\n[ok](../README.md#top) [bad](../README.md#guide)\n")
	write("docs/my file.md", "text\n")
	write("main.go", "package main\n")
	write("untracked.md", "not in the file list\n")
	files := []string{"README.md", "docs/guide.md", "docs/my file.md", "main.go"}

	problems, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		"README.md:5: #nowhere: no heading with anchor #nowhere in README.md",
		"README.md:5: docs/missing.md: no such file or directory: docs/missing.md",
		"README.md:5: docs/guide.md#nowhere: no heading with anchor #nowhere in docs/guide.md",
		"README.md:5: ../outside.md: points outside the repository",
		"README.md:6: untracked.md: no such file or directory: untracked.md",
		"docs/guide.md:3: ../README.md#guide: no heading with anchor #guide in README.md",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFilesWithoutGit lists a directory that is not a repository.
func TestFilesWithoutGit(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"a.md", "d/b.md", ".hidden/c.md"} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(root))
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := []string{"a.md", "d/b.md"}; !reflect.DeepEqual(files, want) {
		t.Errorf("Files = %v, want %v", files, want)
	}
}
