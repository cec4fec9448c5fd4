package registry

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
)

const (
	user     = "puller"
	password = "canary-Pa55w0rd-registry"
)

// reg is go-containerregistry's in-memory registry behind basic auth.
type reg struct {
	host     string
	requests atomic.Int64 // manifest requests
}

func newRegistry(t *testing.T) *reg {
	t.Helper()
	r := &reg{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		if strings.Contains(req.URL.Path, "/manifests/") {
			r.requests.Add(1)
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

var basic = remote.WithAuth(&authn.Basic{Username: user, Password: password})

func image(t *testing.T, platform v1.Platform, entrypoint, cmd []string) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: platform.OS, Architecture: platform.Architecture,
		Config: v1.Config{Entrypoint: entrypoint, Cmd: cmd},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (r *reg) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	ref, _ := name.ParseReference(r.host + "/" + repo)
	if err := remote.Write(ref, img, basic); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// pushIndex pushes a multi-arch index whose first entry is a BuildKit
// attestation manifest.
func (r *reg) pushIndex(t *testing.T, repo string) string {
	t.Helper()
	amd := image(t, v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"/amd64"}, []string{"run"})
	arm := image(t, v1.Platform{OS: "linux", Architecture: "arm64"}, []string{"/arm64"}, []string{"run"})
	att := image(t, v1.Platform{OS: "unknown", Architecture: "unknown"}, []string{"/attestation"}, nil)
	amdDigest, _ := amd.Digest()
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amdDigest.String()},
		}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref, _ := name.ParseReference(r.host + "/" + repo)
	if err := remote.WriteIndex(ref, idx, basic); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// objects are a namespace's Secrets and ServiceAccounts.
type objects struct {
	mu       sync.Mutex
	secrets  map[string]*corev1.Secret
	accounts map[string]*corev1.ServiceAccount
}

func (o *objects) Secret(_ context.Context, ns, n string) (*corev1.Secret, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.secrets[ns+"/"+n], nil
}

func (o *objects) ServiceAccount(_ context.Context, ns, n string) (*corev1.ServiceAccount, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.accounts[ns+"/"+n], nil
}

func pullSecret(t *testing.T, host, u, p string) *corev1.Secret {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"username": u, "password": p}}})
	return &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: b}}
}

func pod(sa string, pullSecrets ...string) *corev1.Pod {
	p := &corev1.Pod{}
	p.Namespace = "apps"
	p.Spec.ServiceAccountName = sa
	for _, s := range pullSecrets {
		p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return p
}

func TestPullSecrets(t *testing.T) {
	r := newRegistry(t)
	ref := r.push(t, "private/app:1.0", image(t, DefaultPlatform, []string{"/bin/app"}, []string{"serve", "--port=8080"}))
	obj := &objects{
		secrets: map[string]*corev1.Secret{
			"apps/good":  pullSecret(t, r.host, user, password),
			"apps/wrong": pullSecret(t, r.host, user, "not-the-password"),
			"apps/other": pullSecret(t, "elsewhere.example.com", user, password),
		},
		accounts: map[string]*corev1.ServiceAccount{
			"apps/builder": {ImagePullSecrets: []corev1.LocalObjectReference{{Name: "good"}}},
			"apps/default": {},
		},
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		ok   bool
	}{
		{"the pod's pull secret", pod("", "good"), true},
		{"the service account's pull secret", pod("builder"), true},
		{"a wrong secret first, then the right one", pod("", "wrong", "missing", "good"), true},
		{"no pull secret", pod(""), false},
		{"a secret for another registry", pod("", "other"), false},
		{"a wrong secret", pod("", "wrong"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pods{Resolver: &Resolver{TTL: 5 * time.Minute}, Objects: obj}
			ep, cmd, err := p.Entrypoint(context.Background(), tc.pod, ref)
			if !tc.ok {
				if err == nil {
					t.Fatalf("got %q %q without credentials", ep, cmd)
				}
				if !strings.Contains(err.Error(), "UNAUTHORIZED") {
					t.Errorf("error does not give the cause: %v", err)
				}
				if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "not-the-password") {
					t.Errorf("error holds a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ep, []string{"/bin/app"}) || !reflect.DeepEqual(cmd, []string{"serve", "--port=8080"}) {
				t.Errorf("entrypoint %q cmd %q", ep, cmd)
			}
		})
	}
}

func TestMultiArchIndex(t *testing.T) {
	r := newRegistry(t)
	ref := r.pushIndex(t, "multi:latest")
	obj := &objects{secrets: map[string]*corev1.Secret{"apps/good": pullSecret(t, r.host, user, password)}}
	p := &Pods{Resolver: &Resolver{}, Objects: obj}
	for _, tc := range []struct {
		selector map[string]string
		want     string
		err      string
	}{
		{nil, "/amd64", ""},
		{map[string]string{"kubernetes.io/arch": "arm64"}, "/arm64", ""},
		{map[string]string{"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}, "/amd64", ""},
		{map[string]string{"kubernetes.io/arch": "s390x"}, "", "no linux/s390x variant (it has linux/amd64, linux/arm64/v8)"},
		{map[string]string{"kubernetes.io/os": "windows"}, "", "no windows/amd64 variant"},
	} {
		pd := pod("", "good")
		pd.Spec.NodeSelector = tc.selector
		ep, _, err := p.Entrypoint(context.Background(), pd, ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: got %q, %v; want error %q", tc.selector, ep, err, tc.err)
			}
			continue
		}
		if err != nil || len(ep) != 1 || ep[0] != tc.want {
			t.Errorf("%v: got %q, %v; want %s", tc.selector, ep, err, tc.want)
		}
	}
}

func TestCache(t *testing.T) {
	r := newRegistry(t)
	ref := r.push(t, "app:1.0", image(t, DefaultPlatform, []string{"/v1"}, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var counts []string
	res := &Resolver{TTL: 5 * time.Minute, Now: func() time.Time { return now }, Count: func(s string) { counts = append(counts, s) }}
	kc := authn.NewMultiKeychain(staticKeychain{})
	lookup := func(image string) string {
		t.Helper()
		c, err := res.Lookup(context.Background(), image, DefaultPlatform, kc)
		if err != nil {
			t.Fatal(err)
		}
		return c.Entrypoint[0]
	}
	if got := lookup(ref); got != "/v1" {
		t.Fatal(got)
	}
	before := r.requests.Load()
	now = now.Add(4 * time.Minute)
	if got := lookup(ref); got != "/v1" || r.requests.Load() != before {
		t.Fatalf("within the TTL: %s, %d more requests", got, r.requests.Load()-before)
	}
	// The tag moves; past the TTL the new image is seen.
	r.push(t, "app:1.0", image(t, DefaultPlatform, []string{"/v2"}, nil))
	now = now.Add(2 * time.Minute)
	if got := lookup(ref); got != "/v2" {
		t.Fatalf("past the TTL: %s", got)
	}
	// A digest is never looked up twice.
	img := image(t, DefaultPlatform, []string{"/pinned"}, nil)
	r.push(t, "pinned:1", img)
	d, _ := img.Digest()
	byDigest := r.host + "/pinned@" + d.String()
	lookup(byDigest)
	before = r.requests.Load()
	now = now.Add(24 * time.Hour)
	if got := lookup(byDigest); got != "/pinned" || r.requests.Load() != before {
		t.Fatalf("digest: %s, %d more requests", got, r.requests.Load()-before)
	}
	want := []string{"miss", "hit", "miss", "miss", "hit"}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("counted %q, want %q", counts, want)
	}
}

type staticKeychain struct{}

func (staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: user, Password: password}, nil
}
