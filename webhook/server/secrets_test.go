package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
	"github.com/secrets-init/secrets-init/webhook/decrypt"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// The Secrets of testdata/secrets hold JWEs made with `secrets-init encrypt
// --key file:testdata/secrets/key.pem` (other.pub.pem for the wrong key);
// their plaintext is the canary.

func secretsHandler(t *testing.T, detect bool, log *slog.Logger) *SecretsHandler {
	t.Helper()
	// The webhook's own environment configures the jwe store.
	t.Setenv(jwe.EnvKey, "")
	t.Setenv(jwe.EnvKeys, "")
	os.Unsetenv(jwe.EnvKeys)
	return &SecretsHandler{
		Metrics: NewMetrics(),
		Log:     log,
		Decrypter: &decrypt.Decrypter{
			Open:      jwe.Open,
			Settings:  provider.Settings{Log: log, Limit: provider.NewLimiter(4)},
			DetectJWE: detect,
		},
	}
}

func TestSecretsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/secrets/*.review.json")
	if len(files) < 9 {
		t.Fatalf("only %d reviews", len(files))
	}
	b64canary := base64.StdEncoding.EncodeToString([]byte(canary))
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".review.json")
		t.Run(name, func(t *testing.T) {
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
			h := secretsHandler(t, strings.HasPrefix(name, "detect-"), log)
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var in admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &in); err != nil {
				t.Fatal(err)
			}
			out := post(t, h, body)
			if out.Response == nil || out.Response.UID != in.Request.UID {
				t.Fatalf("response %+v does not answer request %s", out.Response, in.Request.UID)
			}
			g := golden{Allowed: out.Response.Allowed}
			if r := out.Response.Result; r != nil {
				g.Code, g.Message = r.Code, r.Message
			}
			for _, leak := range []string{canary, b64canary} {
				if strings.Contains(g.Message, leak) {
					t.Errorf("the message holds the plaintext: %s", g.Message)
				}
				if strings.Contains(logged.String(), leak) {
					t.Errorf("the log holds the plaintext:\n%s", logged.String())
				}
			}
			if len(out.Response.Patch) > 0 {
				if pt := out.Response.PatchType; pt == nil || *pt != admissionv1.PatchTypeJSONPatch {
					t.Errorf("patch type %v", pt)
				}
				g.Patch = out.Response.Patch
			}
			got, _ := json.MarshalIndent(g, "", "  ")
			got = append(got, '\n')
			gf := filepath.Join("testdata/secrets", name+".golden.json")
			if *update {
				os.WriteFile(gf, got, 0o644)
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("answer differs from %s:\n%s", gf, got)
			}
			if len(out.Response.Patch) == 0 {
				return
			}
			// The patch applies; no jwe: value is left but those the
			// request kept from the stored Secret, and the decrypted
			// values are the canary.
			p, err := jsonpatch.DecodePatch(out.Response.Patch)
			if err != nil {
				t.Fatal(err)
			}
			mutated, err := p.Apply(in.Request.Object.Raw)
			if err != nil {
				t.Fatalf("patch does not apply: %v", err)
			}
			var s, old corev1.Secret
			if err := json.Unmarshal(mutated, &s); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal(in.Request.OldObject.Raw, &old)
			decrypted := 0
			for k, v := range s.Data {
				if bytes.Equal(v, []byte(canary)) {
					decrypted++
				}
				if strings.HasPrefix(string(v), "jwe:") && !bytes.Equal(old.Data[k], v) && name != "plaintext-is-a-reference" {
					t.Errorf("data %s is still a jwe: reference", k)
				}
			}
			for _, v := range s.StringData {
				if v == canary {
					decrypted++
				}
			}
			if decrypted == 0 && name != "plaintext-is-a-reference" {
				t.Error("no value decrypted to the canary")
			}
		})
	}
}

// A decrypted value that is itself a reference is delivered as it is.
func TestSecretsPlaintextIsNotResolved(t *testing.T) {
	h := secretsHandler(t, false, nil)
	body, _ := os.ReadFile("testdata/secrets/plaintext-is-a-reference.review.json")
	out := post(t, h, body)
	var ops []struct{ Value []byte }
	if err := json.Unmarshal(out.Response.Patch, &ops); err != nil || len(ops) != 1 {
		t.Fatalf("patch %s: %v", out.Response.Patch, err)
	}
	if _, ok, err := provider.Parse(string(ops[0].Value)); !ok || err != nil || !strings.HasPrefix(string(ops[0].Value), "jwe:eyJ") {
		t.Errorf("the plaintext is not the inner jwe: reference, as it is (ok %v, err %v)", ok, err)
	}
}

// Two values with the same JWE cost one unwrap: the jwe store is given
// each distinct JWE once.
func TestSecretsDeduplicated(t *testing.T) {
	var logged bytes.Buffer
	h := secretsHandler(t, false, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	body, _ := os.ReadFile("testdata/secrets/compact.review.json")
	if out := post(t, h, body); !out.Response.Allowed {
		t.Fatalf("denied: %+v", out.Response.Result)
	}
	if !strings.Contains(logged.String(), "jwes=1 unwraps=1") {
		t.Errorf("the store was not given one JWE for two values:\n%s", logged.String())
	}
}

// The allow-list of keys (SECRETS_INIT_JWE_KEYS in the webhook's
// environment) is honoured, and the denial names it.
func TestSecretsAllowList(t *testing.T) {
	var logged bytes.Buffer
	h := secretsHandler(t, false, slog.New(slog.NewTextHandler(&logged, nil)))
	t.Setenv(jwe.EnvKeys, "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/")
	body, _ := os.ReadFile("testdata/secrets/compact.review.json")
	out := post(t, h, body)
	if out.Response.Allowed || out.Response.Result == nil {
		t.Fatalf("allowed: %+v", out.Response)
	}
	msg := out.Response.Result.Message
	if !strings.Contains(msg, "Secret apps/db: data password: ") || !strings.Contains(msg, "file:testdata/secrets/key.pem") {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(msg, canary) || strings.Contains(logged.String(), canary) {
		t.Error("the plaintext leaked")
	}
	if h.Metrics.Get("secrets_init_webhook_secret_reviews_total", `result="denied"`) != 1 {
		t.Error("not counted as denied")
	}
}

// In a Secret, ?key= is written by whoever creates it: the allow-list
// binds it too.
func TestSecretsKeyOptionAllowList(t *testing.T) {
	h := secretsHandler(t, false, nil)
	body, _ := os.ReadFile("testdata/secrets/compact.review.json")
	var in admissionv1.AdmissionReview
	json.Unmarshal(body, &in)
	var s corev1.Secret
	json.Unmarshal(in.Request.Object.Raw, &s)
	s.Data = map[string][]byte{"password": append(s.Data["password"], "?key=file:testdata/secrets/key.pem"...)}
	in.Request.Object.Raw, _ = json.Marshal(&s)
	body, _ = json.Marshal(&in)
	if out := post(t, h, body); !out.Response.Allowed {
		t.Fatalf("without an allow-list: %+v", out.Response.Result)
	}
	t.Setenv(jwe.EnvKeys, "file:/etc/keys/")
	out := post(t, h, body)
	if out.Response.Allowed || !strings.Contains(out.Response.Result.Message, "data password: ?key= names key file:testdata/secrets/key.pem, which SECRETS_INIT_JWE_KEYS does not allow") {
		t.Errorf("with an allow-list: %+v", out.Response.Result)
	}
}

func TestSecretsIgnored(t *testing.T) {
	h := secretsHandler(t, false, nil)
	body, _ := os.ReadFile("testdata/secrets/compact.review.json")
	var in admissionv1.AdmissionReview
	json.Unmarshal(body, &in)
	for _, mod := range []func(*admissionv1.AdmissionRequest){
		func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Delete },
		func(r *admissionv1.AdmissionRequest) { r.Kind.Kind = "ConfigMap" },
		func(r *admissionv1.AdmissionRequest) { r.SubResource = "status" },
	} {
		req := *in.Request
		mod(&req)
		b, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: in.TypeMeta, Request: &req})
		out := post(t, h, b)
		if !out.Response.Allowed || out.Response.Patch != nil {
			t.Errorf("%s %s/%s: allowed %v patch %s", req.Operation, req.Kind.Kind, req.SubResource, out.Response.Allowed, out.Response.Patch)
		}
	}
	if got := h.Metrics.Get("secrets_init_webhook_secret_reviews_total", `result="ignored"`); got != 3 {
		t.Errorf("ignored counted %d times", got)
	}
}
