package webhook_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks the root Dockerfile statically (docker does not run
// here): the default target is still the secrets-init image, and the
// webhook target builds this module's command from paths that exist.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`)
	for _, m := range from.FindAllStringSubmatch(string(b), -1) {
		stages = append(stages, m[1]+" "+m[2])
	}
	want := []string{"golang:1.26-bookworm build", "scratch secrets-init", "golang:1.26-bookworm webhook-build", "scratch webhook", "secrets-init "}
	if strings.Join(stages, "|") != strings.Join(want, "|") {
		t.Errorf("stages %q, want %q (the last one is the default target)", stages, want)
	}
	i := strings.Index(string(b), "FROM scratch AS webhook\n")
	webhook := string(b)[i:]
	for _, s := range []string{`ENTRYPOINT ["/secrets-init-webhook"]`, "USER 65534:65534", "COPY --from=webhook-build /out/secrets-init-webhook /secrets-init-webhook"} {
		if !strings.Contains(webhook, s) {
			t.Errorf("the webhook stage lacks %s", s)
		}
	}
	if !strings.Contains(string(b), "./cmd/secrets-init-webhook") {
		t.Error("the webhook stage does not build ./cmd/secrets-init-webhook")
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/secrets-init-webhook/main.go"} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	root := string(b)[:strings.Index(string(b), "FROM golang:1.26-bookworm AS webhook-build")]
	for _, s := range []string{`ENTRYPOINT ["/secrets-init"]`, `CMD ["copy", "/helper/bin"]`} {
		if !strings.Contains(root, s) {
			t.Errorf("the secrets-init stage lost %s", s)
		}
	}
}
