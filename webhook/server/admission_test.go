package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/secrets-init/secrets-init/webhook/inject"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// canary is a secret value held by a Secret the webhook reads; it must never
// reach a response or a log line.
const canary = "canary-Sup3rS3cret-value"

// objects is a namespace's Secrets and ConfigMaps, as the API server would
// answer (the e2e test uses the real one).
type objects struct {
	secrets    map[string]map[string][]byte
	configMaps map[string]map[string]string
	forbidden  map[string]bool
	reads      []string
}

func (o *objects) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	o.reads = append(o.reads, "Secret "+ns+"/"+name)
	if o.forbidden[name] {
		return nil, fmt.Errorf("secrets %q is forbidden: %w", name, inject.ErrForbidden)
	}
	d, ok := o.secrets[name]
	if !ok {
		return nil, fmt.Errorf("secrets %q %w", name, inject.ErrNotFound)
	}
	return d, nil
}

func (o *objects) ConfigMap(_ context.Context, ns, name string) (map[string]string, error) {
	o.reads = append(o.reads, "ConfigMap "+ns+"/"+name)
	d, ok := o.configMaps[name]
	if !ok {
		return nil, fmt.Errorf("configmaps %q %w", name, inject.ErrNotFound)
	}
	return d, nil
}

// images are image configurations, as a registry would answer (the
// registry package is tested against a real registry).
type images map[string][2][]string

func (im images) Entrypoint(_ context.Context, _ *corev1.Pod, image string) ([]string, []string, error) {
	c, ok := im[image]
	if !ok {
		return nil, nil, errors.New("GET https://registry.example.com/v2/private/manifests/9: UNAUTHORIZED: authentication required")
	}
	return c[0], c[1], nil
}

func testHandler(t *testing.T) (*Handler, *objects) {
	t.Helper()
	obj := &objects{
		secrets: map[string]map[string][]byte{
			"db": {"password-ref": []byte("vault:secret/data/db#password"), "password": []byte(canary)},
		},
		configMaps: map[string]map[string]string{
			"refs": {"PLAIN": "x", "TOKEN": "jwe:eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.d3JhcHBlZA.aXZpdml2aXZpdml2.Y2lwaGVy.dGFndGFndGFndGFn"},
		},
		forbidden: map[string]bool{"not-mine": true},
	}
	m := NewMetrics()
	return &Handler{
		Injector: &inject.Injector{
			Image:   "registry.example.com/secrets-init@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Objects: obj,
			Entrypoints: images{
				"registry.example.com/app:1.0":  {{"/usr/bin/tini", "--"}, {"/bin/app", "serve"}},
				"registry.example.com/proxy:2":  {{"/proxy"}, {"--listen=:15000"}},
				"registry.example.com/worker:1": {nil, {"/bin/worker"}},
				"registry.example.com/shell:1":  {{"/bin/sh", "-c"}, {`echo "$HOME" $(NAME) $$`}},
			},
			ValidateFlags: inject.ValidateFlags,
			Forbidden:     func(kind, _, _ string) { m.Add("secrets_init_webhook_forbidden_total", `kind="`+kind+`"`) },
		},
		Metrics: m,
	}, obj
}

// golden is what a review's answer is compared on.
type golden struct {
	Allowed bool            `json:"allowed"`
	Code    int32           `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Patch   json.RawMessage `json:"patch,omitempty"`
}

func post(t *testing.T, h http.Handler, body []byte) *admissionv1.AdmissionReview {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/mutate/*.review.json")
	if len(files) < 10 {
		t.Fatalf("only %d reviews", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".review.json")
		t.Run(name, func(t *testing.T) {
			h, _ := testHandler(t)
			var logged bytes.Buffer
			h.Log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
			defer func() {
				if bytes.Contains(logged.Bytes(), []byte(canary)) {
					t.Errorf("the log holds a secret value:\n%s", logged.String())
				}
			}()
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
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
				t.Errorf("answer is %s %s", out.APIVersion, out.Kind)
			}
			g := golden{Allowed: out.Response.Allowed}
			if r := out.Response.Result; r != nil {
				g.Code, g.Message = r.Code, r.Message
			}
			if len(out.Response.Patch) > 0 {
				if pt := out.Response.PatchType; pt == nil || *pt != admissionv1.PatchTypeJSONPatch {
					t.Errorf("patch type %v", pt)
				}
				g.Patch = out.Response.Patch
			}
			got, _ := json.MarshalIndent(g, "", "  ")
			got = append(got, '\n')
			if bytes.Contains(got, []byte(canary)) {
				t.Fatalf("the answer holds a secret value:\n%s", got)
			}
			gf := filepath.Join("testdata/mutate", name+".golden.json")
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
			// The patch applies, and the pod it makes is left alone by
			// a second pass (reinvocation) and by a new CREATE of it.
			p, err := jsonpatch.DecodePatch(out.Response.Patch)
			if err != nil {
				t.Fatal(err)
			}
			mutated, err := p.Apply(in.Request.Object.Raw)
			if err != nil {
				t.Fatalf("patch does not apply: %v", err)
			}
			var pod corev1.Pod
			if err := json.Unmarshal(mutated, &pod); err != nil {
				t.Fatal(err)
			}
			checkMutated(t, &pod)
			in.Request.Object.Raw = mutated
			again, _ := json.Marshal(in)
			out2 := post(t, h, again)
			if !out2.Response.Allowed || len(out2.Response.Patch) != 0 {
				t.Errorf("second pass: allowed %v, patch %s", out2.Response.Allowed, out2.Response.Patch)
			}
		})
	}
}

// checkMutated checks the invariants of every mutated pod.
func checkMutated(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if pod.Annotations[inject.AnnotationInjected] != "true" {
		t.Error("no injected annotation")
	}
	if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != inject.CopyContainer {
		t.Fatal("the copy initContainer is not first")
	}
	cp := pod.Spec.InitContainers[0]
	sc := cp.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("copy container's securityContext is not restricted: %+v", sc)
	}
	if cp.Resources.Limits.Memory().IsZero() || cp.Resources.Requests.Cpu().IsZero() {
		t.Error("copy container without resources")
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == inject.VolumeName {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.Medium != corev1.StorageMediumMemory || vol.EmptyDir.SizeLimit == nil {
		t.Errorf("volume %+v", vol)
	}
	for _, c := range append(pod.Spec.InitContainers[1:], pod.Spec.Containers...) {
		if len(c.Command) == 0 || c.Command[0] != inject.Binary {
			continue
		}
		ro := false
		for _, m := range c.VolumeMounts {
			if m.Name == inject.VolumeName && m.MountPath == inject.MountPath && m.ReadOnly {
				ro = true
			}
		}
		if !ro {
			t.Errorf("container %s: no read-only mount", c.Name)
		}
		dash := -1
		for i, a := range c.Args {
			if a == "--" {
				dash = i
				break
			}
		}
		if dash < 0 || dash == len(c.Args)-1 {
			t.Errorf("container %s: args %q have no -- ORIGINAL", c.Name, c.Args)
		}
	}
}

func TestAlreadyInjectedIsUntouched(t *testing.T) {
	h, _ := testHandler(t)
	body, err := os.ReadFile("testdata/mutate/already-injected.json")
	if err != nil {
		t.Fatal(err)
	}
	out := post(t, h, body)
	if !out.Response.Allowed || out.Response.Patch != nil {
		t.Fatalf("allowed %v patch %s", out.Response.Allowed, out.Response.Patch)
	}
	if h.Metrics.Get("secrets_init_webhook_admissions_total", `result="skipped"`) != 1 {
		t.Error("not counted as skipped")
	}
}

func TestReadsAndForbidden(t *testing.T) {
	h, obj := testHandler(t)
	body, _ := os.ReadFile("testdata/mutate/value-from.review.json")
	post(t, h, body)
	if got := h.Metrics.Get("secrets_init_webhook_forbidden_total", `kind="Secret"`); got != 1 {
		t.Errorf("forbidden counted %d times", got)
	}
	for _, r := range obj.reads {
		if !strings.Contains(r, " apps/") {
			t.Errorf("read %s outside the pod's namespace", r)
		}
	}
	rec := httptest.NewRecorder()
	h.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`secrets_init_webhook_admissions_total{result="mutated"} 1`,
		`secrets_init_webhook_forbidden_total{kind="Secret"} 1`,
		"# TYPE secrets_init_webhook_admissions_total counter",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, rec.Body)
		}
	}
}

func TestNotAPodCreate(t *testing.T) {
	h, _ := testHandler(t)
	body, _ := os.ReadFile("testdata/mutate/command-args.review.json")
	var in admissionv1.AdmissionReview
	json.Unmarshal(body, &in)
	for _, mod := range []func(*admissionv1.AdmissionRequest){
		func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Update },
		func(r *admissionv1.AdmissionRequest) { r.SubResource = "status" },
		func(r *admissionv1.AdmissionRequest) { r.Kind.Kind = "Secret" },
	} {
		req := *in.Request
		mod(&req)
		b, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: in.TypeMeta, Request: &req})
		out := post(t, h, b)
		if !out.Response.Allowed || out.Response.Patch != nil {
			t.Errorf("%s %s/%s: allowed %v patch %s", req.Operation, req.Kind.Kind, req.SubResource, out.Response.Allowed, out.Response.Patch)
		}
	}
	for _, bad := range []string{"", "{", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`} {
		srv := httptest.NewServer(h)
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(bad))
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: status %d", bad, resp.StatusCode)
		}
	}
}
