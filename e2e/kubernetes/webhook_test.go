package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
)

const (
	// canary is a secret value: it must reach the app, and nothing else.
	canary = "db-S3cret-canary-e2e"
	// bystander is a value in a Secret the webhook reads; it is no
	// reference and must appear nowhere.
	bystander = "bystander-canary-e2e"
	regUser   = "puller"
	regPass   = "registry-Pa55-canary"
	// secretsInitImage is the --image of the webhook; nothing pulls it here.
	secretsInitImage = "registry.example.com/secrets-init@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// Binaries built by TestMain. go test's -timeout counts this build too (a
// cold kube-apiserver takes minutes): the Makefile gives the e2e modules
// E2ETIMEOUT.
var secretsInit, webhookBin, kubeAPIServer, kubeControllerManager string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "secrets-init-e2e-kubernetes")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	secretsInit = filepath.Join(dir, "secrets-init")
	webhookBin = filepath.Join(dir, "secrets-init-webhook")
	for _, b := range []struct{ dir, out, pkg string }{
		{"../..", secretsInit, "."},
		{"../../webhook", webhookBin, "./cmd/secrets-init-webhook"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.out, err, out)
			os.Exit(1)
		}
	}
	for _, k := range []struct {
		out      *string
		env, pkg string
	}{
		{&kubeAPIServer, "KUBE_APISERVER", "k8s.io/kubernetes/cmd/kube-apiserver"},
		{&kubeControllerManager, "KUBE_CONTROLLER_MANAGER", "k8s.io/kubernetes/cmd/kube-controller-manager"},
	} {
		if *k.out, err = buildKube(k.env, dir, k.pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// privateRegistry serves images over the registry protocol (the manifest
// and config requests a client makes to read an image's configuration),
// behind basic auth. (Not go-containerregistry's registry: that module
// would raise golang.org/x versions above kube-apiserver's, so building
// kube-apiserver from this module would no longer share its build cache.)
type privateRegistry struct {
	host      string
	manifests map[string][]byte // "repo:tag" -> manifest
	blobs     map[string][]byte // digest -> content
}

func newRegistry(t *testing.T) *privateRegistry {
	t.Helper()
	r := &privateRegistry{manifests: map[string][]byte{}, blobs: map[string][]byte{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != regUser || p != regPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		path := strings.TrimPrefix(req.URL.Path, "/v2/")
		if path == "" {
			return
		}
		if repo, ref, ok := strings.Cut(path, "/manifests/"); ok {
			if m, ok := r.manifests[repo+":"+ref]; ok {
				sum := sha256.Sum256(m)
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
				w.Header().Set("Content-Length", strconv.Itoa(len(m)))
				if req.Method != http.MethodHead {
					w.Write(m)
				}
				return
			}
		}
		if _, d, ok := strings.Cut(path, "/blobs/"); ok {
			if b, ok := r.blobs[d]; ok {
				w.Write(b)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}`))
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// push stores an image whose configuration has entrypoint and cmd, and
// returns its reference.
func (r *privateRegistry) push(repoTag string, entrypoint, cmd []string) string {
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": entrypoint, "Cmd": cmd},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
	})
	sum := sha256.Sum256(config)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	r.blobs[digest] = config
	r.manifests[repoTag], _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
		"layers": []any{},
	})
	return r.host + "/" + repoTag
}

// apply creates the objects of deploy/secrets-init-webhook-decrypt-secrets.yaml
// (deploy/secrets-init-webhook.yaml with the /secrets webhook on; a test in
// the webhook module checks they differ by that only), with the webhook
// reached at base instead of its Service.
func apply(t *testing.T, c *cluster, base string) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/secrets-init-webhook-decrypt-secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cs := c.client
	for _, doc := range strings.Split(string(b), "\n---") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("deploy/: %v", err)
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = cs.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = cs.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			// The webhook's own pods are admitted in its namespace, which
			// enforces the restricted profile (nothing runs them here).
			_, err = cs.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *policyv1.PodDisruptionBudget:
			_, err = cs.PolicyV1().PodDisruptionBudgets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			for i := range o.Webhooks {
				url := base + *o.Webhooks[i].ClientConfig.Service.Path
				o.Webhooks[i].ClientConfig.Service = nil
				o.Webhooks[i].ClientConfig.URL = &url
			}
			_, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("deploy/ holds an unexpected %T", obj)
		}
		if err != nil {
			t.Fatalf("creating %T: %v", obj, err)
		}
	}
}

func TestWebhook(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	cs := c.client
	registry := newRegistry(t)
	reg := registry.host
	appImage := registry.push("team/app:1.0", []string{"/usr/bin/env"}, nil)

	port := freePort(t)
	apply(t, c, "https://127.0.0.1:"+strconv.Itoa(port))
	// The webhook runs as its service account would: only the RBAC of deploy/.
	webhookKC := c.kubeconfig(t, "webhook", "system:serviceaccount:secrets-init:secrets-init-webhook")
	wh := start(t, c.dir, "secrets-init-webhook", webhookBin,
		"--kubeconfig", webhookKC, "--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--tls-self-signed", "--namespace", "secrets-init", "--tls-san", "127.0.0.1",
		"--image", secretsInitImage, "--log-level", "debug", "--decrypt-secrets")

	// Self-signed mode: the CA in its Secret is the caBundle it patched, and
	// /readyz turns ready once it has.
	var caPEM []byte
	waitFor(t, "the webhook's CA Secret", func() bool {
		s, err := cs.CoreV1().Secrets("secrets-init").Get(ctx, "secrets-init-webhook-ca", metav1.GetOptions{})
		if err == nil {
			caPEM = s.Data["ca.crt"]
		}
		return err == nil
	})
	hc := tlsClient(caPEM)
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	waitFor(t, "webhook /readyz", func() bool {
		r, err := hc.Get(base + "/readyz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == 200
	})
	mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "secrets-init-webhook", metav1.GetOptions{})
	if err != nil || !bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, caPEM) {
		t.Fatalf("caBundle not patched with the CA: %v", err)
	}

	// A namespace that enforces the restricted profile, with a pull secret
	// and a Secret that holds a reference.
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps",
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}, metav1.CreateOptions{})
		return err
	})
	waitFor(t, "the default service account", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("apps").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	files := t.TempDir()
	dbFile, apiKeyFile := filepath.Join(files, "db-password"), filepath.Join(files, "api-key")
	write(t, dbFile, []byte(canary))
	dbRef = "secretfile:" + dbFile
	write(t, apiKeyFile, []byte("api-key-value\n"))
	dockercfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg: map[string]string{"username": regUser, "password": regPass}}})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
			Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: dockercfg}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Data: map[string][]byte{"api-key-ref": []byte("secretfile:" + apiKeyFile + "?trim"), "other": []byte(bystander)}}, metav1.CreateOptions{})
		return err
	})

	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "app", "secrets-init.io/inject": "enabled"}},
				Spec:       appSpec(appImage, true),
			},
		},
	}
	mustCreate(t, func() error {
		_, err := cs.AppsV1().Deployments("apps").Create(ctx, dep, metav1.CreateOptions{})
		return err
	})
	var pod corev1.Pod
	defer func() {
		if t.Failed() {
			rs, _ := cs.AppsV1().ReplicaSets("apps").List(ctx, metav1.ListOptions{})
			for _, r := range rs.Items {
				t.Logf("ReplicaSet %s: %+v", r.Name, r.Status)
			}
			ev, _ := cs.CoreV1().Events("apps").List(ctx, metav1.ListOptions{})
			for _, e := range ev.Items {
				t.Logf("event %s %s: %s", e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
	}()
	waitFor(t, "the Deployment's pod", func() bool {
		l, err := cs.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
		if err == nil && len(l.Items) > 0 {
			pod = l.Items[0]
			return true
		}
		return false
	})

	t.Run("mutated as the golden tests say", func(t *testing.T) {
		checkMutatedPod(t, &pod, []string{"--", "/usr/bin/env"})
	})

	t.Run("untouched", func(t *testing.T) {
		noRefs := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "no-refs", Labels: map[string]string{"secrets-init.io/inject": "enabled"}}, Spec: appSpec(appImage, false)}
		noRefs.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PLAIN", Value: "hello"}}
		notOptedIn := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "not-opted-in"}, Spec: appSpec(appImage, true)}
		for _, p := range []*corev1.Pod{noRefs, notOptedIn} {
			got, err := cs.CoreV1().Pods("apps").Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			if len(got.Spec.InitContainers) != 0 || got.Annotations[`secrets-init.io/injected`] != "" || len(got.Spec.Containers[0].Command) != 0 {
				t.Errorf("%s was mutated: %+v", p.Name, got.Spec)
			}
		}
	})

	t.Run("denied with the container and the cause", func(t *testing.T) {
		unknown := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "private", Labels: map[string]string{"secrets-init.io/inject": "enabled"}}, Spec: appSpec(reg+"/team/unknown:9", true)}
		unknown.Spec.ImagePullSecrets = nil
		_, err := cs.CoreV1().Pods("apps").Create(ctx, unknown, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `container "app": cannot read the ENTRYPOINT of image `+reg+"/team/unknown:9") || !strings.Contains(err.Error(), "UNAUTHORIZED") {
			t.Errorf("unknown private image: %v", err)
		}
		badFlags := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bad-flags", Labels: map[string]string{"secrets-init.io/inject": "enabled"},
			Annotations: map[string]string{"secrets-init.io/flags": "--timeout=soon"}}, Spec: appSpec(appImage, true)}
		_, err = cs.CoreV1().Pods("apps").Create(ctx, badFlags, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "secrets-init.io/flags") {
			t.Errorf("bad flags: %v", err)
		}
	})

	t.Run("the kubelet runs it", func(t *testing.T) {
		// The copy initContainer, with its volume as a directory here.
		bin := t.TempDir()
		cp := pod.Spec.InitContainers[0]
		argv := append(append([]string{}, cp.Command...), cp.Args...)
		for i, a := range argv {
			switch a {
			case "/secrets-init": // the binary in the secrets-init image
				argv[i] = secretsInit
			case "/secrets-init/bin": // the volume's mount
				argv[i] = bin
			}
		}
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", argv, err, out)
		}
		// The app container, with the environment the kubelet gives it.
		app := pod.Spec.Containers[0]
		env := []string{"PATH=/usr/bin:/bin"}
		for _, e := range app.Env {
			v := e.Value
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
				s, err := cs.CoreV1().Secrets("apps").Get(ctx, r.SecretKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				v = string(s.Data[r.SecretKeyRef.Key])
			}
			env = append(env, e.Name+"="+v)
		}
		argv = append(append([]string{}, app.Command...), app.Args...)
		if argv[0] != "/secrets-init/bin/secrets-init" {
			t.Fatalf("the app runs %q", argv)
		}
		argv[0] = filepath.Join(bin, "secrets-init")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%q: %v\n%s", argv, err, stderr.String())
		}
		got := map[string]string{}
		for _, l := range strings.Split(stdout.String(), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				got[k] = v
			}
		}
		if got["DB_PASSWORD"] != canary || got["API_KEY"] != "api-key-value" || got["PLAIN"] != "hello" {
			t.Errorf("the app received %q", got)
		}
	})

	t.Run("Secret decrypted on apply", func(t *testing.T) {
		testDecryptSecrets(t, c)
	})

	t.Run("metrics", func(t *testing.T) {
		r, err := hc.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		for _, want := range []string{`secrets_init_webhook_admissions_total{result="mutated"} 1`, `secrets_init_webhook_admissions_total{result="denied"} 2`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %q:\n%s", want, b)
			}
		}
	})

	t.Run("a Secret RBAC hides", func(t *testing.T) {
		testForbidden(t, c, hc, base, appImage)
	})

	t.Run("caBundle restored", func(t *testing.T) {
		// Someone overwrites the configuration: the webhook patches it back
		// within its 30s check.
		_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, "secrets-init-webhook", types.JSONPatchType,
			[]byte(`[{"op":"remove","path":"/webhooks/0/clientConfig/caBundle"}]`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the caBundle back", func() bool {
			m, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "secrets-init-webhook", metav1.GetOptions{})
			return err == nil && bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, caPEM)
		})
	})

	t.Run("fail closed when the webhook is down", func(t *testing.T) {
		wh.Process.Kill()
		wh.Wait()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "while-down", Labels: map[string]string{"secrets-init.io/inject": "enabled"}}, Spec: appSpec(appImage, true)}
		_, err := cs.CoreV1().Pods("apps").Create(ctx, p, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("opted-in pod with the webhook down: %v", err)
		}
		p = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unaffected"}, Spec: appSpec(appImage, true)}
		if _, err := cs.CoreV1().Pods("apps").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Errorf("a pod that did not opt in is blocked: %v", err)
		}
	})

	// Nothing the webhook logged holds a value.
	b, _ := os.ReadFile(filepath.Join(c.dir, "secrets-init-webhook.log"))
	for _, v := range []string{canary, bystander, regPass, jweCanary} {
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("the webhook's log holds %q", v)
		}
	}
}

// testForbidden installs the webhook as Helm's readSecrets=false does (its
// ClusterRole without secrets), then: a pod whose only references come
// from a Secret (valueFrom and envFrom) is admitted unwrapped, as SPEC §11
// and docs/kubernetes.md say; a pod that also has a literal reference is
// wrapped; each read RBAC refused is counted in
// secrets_init_webhook_forbidden_total and logged with the Secret's name.
// The ClusterRole is put back at the end.
func testForbidden(t *testing.T, c *cluster, hc *http.Client, base, image string) {
	ctx := context.Background()
	cs := c.client
	roles := cs.RbacV1().ClusterRoles()
	orig, err := roles.Get(ctx, "secrets-init-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noSecrets := orig.DeepCopy()
	for i, r := range noSecrets.Rules {
		var keep []string
		for _, res := range r.Resources {
			if res != "secrets" {
				keep = append(keep, res)
			}
		}
		noSecrets.Rules[i].Resources = keep
	}
	// canRead asks the API server's authorizer whether the webhook may read
	// the Secret apps/db (RBAC's cache follows the ClusterRole shortly).
	canRead := func() bool {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               "system:serviceaccount:secrets-init:secrets-init-webhook",
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:secrets-init", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "apps", Verb: "get", Resource: "secrets", Name: "db"},
			}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	if _, err := roles.Update(ctx, noSecrets, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cur, err := roles.Get(ctx, "secrets-init-webhook", metav1.GetOptions{})
		if err == nil {
			cur.Rules = orig.Rules
			_, err = roles.Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatalf("putting the ClusterRole back: %v", err)
		}
		waitFor(t, "the webhook's Secret reads allowed again", canRead)
	}()
	waitFor(t, "the webhook's Secret reads refused", func() bool { return !canRead() })
	const forbidden = `secrets_init_webhook_forbidden_total{kind="Secret"}`
	reviews := func() int {
		return metric(t, hc, base, `secrets_init_webhook_admissions_total{result="mutated"}`) +
			metric(t, hc, base, `secrets_init_webhook_admissions_total{result="skipped"}`)
	}
	before, reviewsBefore := metric(t, hc, base, forbidden), reviews()

	// Only references from the Secret: the webhook cannot see them. The
	// container sets its command: no registry lookup (whose pull secret
	// the webhook cannot read either).
	hidden := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "secret-refs-hidden", Labels: map[string]string{"secrets-init.io/inject": "enabled"}},
		Spec: appSpec(image, false)}
	app := &hidden.Spec.Containers[0]
	app.Command = []string{"/usr/bin/env"}
	app.Env = []corev1.EnvVar{{Name: "API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "api-key-ref"}}}}
	app.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}}}
	got, err := cs.CoreV1().Pods("apps").Create(ctx, hidden, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a pod with references only in a Secret the webhook may not read: %v", err)
	}
	if len(got.Spec.InitContainers) != 0 || got.Annotations["secrets-init.io/injected"] != "" ||
		!reflect.DeepEqual(got.Spec.Containers[0].Command, []string{"/usr/bin/env"}) || len(got.Spec.Containers[0].VolumeMounts) > 1 {
		t.Errorf("mutated, though the webhook could not read its Secret: %+v", got.Spec)
	}
	after, reviewsAfter := metric(t, hc, base, forbidden), reviews()
	if reviewsAfter-reviewsBefore != 1 || after-before != 2 {
		t.Errorf("%s went from %d to %d in %d reviews; want 2 (valueFrom, envFrom) in 1", forbidden, before, after, reviewsAfter-reviewsBefore)
	}

	// A literal reference too: wrapped all the same.
	mixed := hidden.DeepCopy()
	mixed.Name = "secret-refs-hidden-and-literal"
	mixed.Spec.Containers[0].Env = append(mixed.Spec.Containers[0].Env, corev1.EnvVar{Name: "DB_PASSWORD", Value: dbRef})
	got, err = cs.CoreV1().Pods("apps").Create(ctx, mixed, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["secrets-init.io/injected"] != "true" ||
		!reflect.DeepEqual(got.Spec.Containers[0].Args, []string{"--", "/usr/bin/env"}) {
		t.Errorf("not wrapped: %q %q", got.Spec.Containers[0].Command, got.Spec.Containers[0].Args)
	}
	// The API server may review the mutated pod again (reinvocationPolicy
	// IfNeeded; then it is skipped as already injected): each review
	// counts the two refused reads.
	if n, r := metric(t, hc, base, forbidden)-after, reviews()-reviewsAfter; r < 1 || n != 2*r {
		t.Errorf("%s: %d more in %d reviews, want 2 per review", forbidden, n, r)
	}
	// Nor can it read pull secrets: a container without command, whose
	// entrypoint needs the pod's pull secret, is denied naming it.
	noCommand := hidden.DeepCopy()
	noCommand.Name = "secret-refs-hidden-no-command"
	noCommand.Spec.Containers[0].Command = nil
	noCommand.Spec.Containers[0].Env = append(noCommand.Spec.Containers[0].Env, corev1.EnvVar{Name: "DB_PASSWORD", Value: dbRef})
	_, err = cs.CoreV1().Pods("apps").Create(ctx, noCommand, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `container "app": cannot read the ENTRYPOINT of image `+image) ||
		!strings.Contains(err.Error(), "cannot read pull secret apps/regcred") {
		t.Errorf("a pull secret the webhook may not read: %v", err)
	}
	// The log names the Secret (never a value).
	b, _ := os.ReadFile(filepath.Join(c.dir, "secrets-init-webhook.log"))
	if !bytes.Contains(b, []byte(`"msg":"not allowed to read; its values are not inspected","kind":"Secret","namespace":"apps","name":"db"`)) {
		t.Errorf("no log line names the Secret apps/db")
	}
}

// metric reads a counter of the webhook's /metrics (0 when absent).
func metric(t *testing.T, hc *http.Client, base, series string) int {
	t.Helper()
	r, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			return n
		}
	}
	return 0
}

// jweCanary is the plaintext of the jwe: values of testDecryptSecrets.
const jweCanary = "jwe-plaintext-canary-e2e"

// testDecryptSecrets: a custodian encrypts with `secrets-init encrypt` to
// a file: key (the JWE's kid names it; the webhook runs on this machine, as
// if the key were mounted into it), creates the labelled Secret, and reads
// it back decrypted; a value for another key is refused, naming the Secret
// and the key; an unlabelled Secret keeps its ciphertext.
func testDecryptSecrets(t *testing.T, c *cluster) {
	ctx := context.Background()
	cs := c.client
	dir := t.TempDir()
	encrypt := func(keyFile string) string {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		cmd := exec.Command(secretsInit, "encrypt", "--key", "file:"+keyFile)
		cmd.Env = []string{"HOME=" + dir}
		cmd.Stdin = strings.NewReader(jweCanary)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("encrypt: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	good := encrypt(filepath.Join(dir, "key.pem"))
	gone := encrypt(filepath.Join(dir, "gone.pem"))
	os.Remove(filepath.Join(dir, "gone.pem")) // the key of that JWE is not there

	labelled := map[string]string{"secrets-init.io/decrypt": "jwe"}
	s, err := cs.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gitops", Labels: labelled},
		Data:       map[string][]byte{"password": []byte(good), "user": []byte("app")},
		StringData: map[string]string{"token": good}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err = cs.CoreV1().Secrets("apps").Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data["password"]) != jweCanary || string(s.Data["token"]) != jweCanary || string(s.Data["user"]) != "app" {
		t.Errorf("stored Secret: password %q, token %q, user %q", s.Data["password"], s.Data["token"], s.Data["user"])
	}
	// An update that leaves the values keeps them; new ciphertext is decrypted.
	s.Labels["touched"] = "yes"
	s.Data["user"] = []byte(good)
	if s, err = cs.CoreV1().Secrets("apps").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["password"]) != jweCanary || string(s.Data["user"]) != jweCanary {
		t.Errorf("updated Secret: password %q, user %q", s.Data["password"], s.Data["user"])
	}

	_, err = cs.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad", Labels: labelled},
		Data: map[string][]byte{"password": []byte(good), "other": []byte(gone)}}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "Secret apps/bad: data other: key file:") || strings.Contains(err.Error(), jweCanary) {
		t.Errorf("a Secret with an undecryptable value: %v", err)
	}
	if _, err := cs.CoreV1().Secrets("apps").Get(ctx, "bad", metav1.GetOptions{}); err == nil {
		t.Error("the refused Secret exists")
	}

	plain, err := cs.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-labelled"},
		Data: map[string][]byte{"password": []byte(good)}}, metav1.CreateOptions{})
	if err != nil || string(plain.Data["password"]) != good {
		t.Errorf("an unlabelled Secret: %v", err)
	}
}

// dbRef is the reference to the database password, a file on this machine.
var dbRef string

func mustCreate(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// appSpec is a pod that passes the restricted profile; with refs, its
// environment holds references (one through a Secret).
func appSpec(image string, refs bool) corev1.PodSpec {
	yes, no := true, false
	uid := int64(1000)
	s := corev1.PodSpec{
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{
			Name: "app", Image: image,
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		}},
	}
	if refs {
		s.Containers[0].Env = []corev1.EnvVar{
			{Name: "PLAIN", Value: "hello"},
			{Name: "DB_PASSWORD", Value: dbRef},
			{Name: "API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "api-key-ref"}}},
		}
	}
	return s
}

// checkMutatedPod compares pod with the golden patches of the webhook's
// unit tests: the same copy initContainer and volume, the container
// wrapped with args.
func checkMutatedPod(t *testing.T, pod *corev1.Pod, args []string) {
	t.Helper()
	b, err := os.ReadFile("../../webhook/server/testdata/mutate/command-args.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Patch []struct {
			Path  string
			Value json.RawMessage
		}
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	var wantInit []corev1.Container
	var wantVol []corev1.Volume
	var wantMounts []corev1.VolumeMount
	for _, op := range golden.Patch {
		switch op.Path {
		case "/spec/initContainers":
			json.Unmarshal(op.Value, &wantInit)
		case "/spec/volumes":
			json.Unmarshal(op.Value, &wantVol)
		case "/spec/containers/0/volumeMounts":
			json.Unmarshal(op.Value, &wantMounts)
		}
	}
	if pod.Annotations["secrets-init.io/injected"] != "true" {
		t.Error("no injected annotation")
	}
	if len(pod.Spec.InitContainers) != 1 || len(wantInit) != 1 {
		t.Fatalf("initContainers %+v", pod.Spec.InitContainers)
	}
	got, want := pod.Spec.InitContainers[0], wantInit[0]
	if got.Name != want.Name || got.Image != want.Image || !reflect.DeepEqual(got.Command, want.Command) || !reflect.DeepEqual(got.Args, want.Args) ||
		!reflect.DeepEqual(got.SecurityContext, want.SecurityContext) || !reflect.DeepEqual(ours(got.VolumeMounts), want.VolumeMounts) ||
		!got.Resources.Limits.Memory().Equal(*want.Resources.Limits.Memory()) || !got.Resources.Requests.Cpu().Equal(*want.Resources.Requests.Cpu()) {
		t.Errorf("copy initContainer\n got %+v\nwant %+v", got, want)
	}
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == "secrets-init-bin" {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || !reflect.DeepEqual(vol.EmptyDir.Medium, wantVol[0].EmptyDir.Medium) || !vol.EmptyDir.SizeLimit.Equal(*wantVol[0].EmptyDir.SizeLimit) {
		t.Errorf("volume %+v", vol)
	}
	app := pod.Spec.Containers[0]
	if !reflect.DeepEqual(app.Command, []string{"/secrets-init/bin/secrets-init"}) || !reflect.DeepEqual(app.Args, args) {
		t.Errorf("app runs %q %q", app.Command, app.Args)
	}
	if !reflect.DeepEqual(ours(app.VolumeMounts), wantMounts) {
		t.Errorf("app mounts %+v, want %+v", app.VolumeMounts, wantMounts)
	}
}

// ours drops the service account token's mount, which the API server's
// ServiceAccount admission adds to every container.
func ours(mounts []corev1.VolumeMount) []corev1.VolumeMount {
	var out []corev1.VolumeMount
	for _, m := range mounts {
		if !strings.HasPrefix(m.Name, "kube-api-access-") {
			out = append(out, m)
		}
	}
	return out
}
