package examples

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// notKubernetes are the YAML files under examples/ that are not Kubernetes
// manifests. Every other *.yaml or *.yml file is decoded as one.
var notKubernetes = map[string]bool{
	"compose/docker-compose.yml":    true, // checked by TestCompose
	"kube-secrets-init/values.yaml": true, // Helm values, checked by TestWebhookMutation
}

// decoder decodes the kinds the examples use, strictly: unknown and
// duplicate fields are errors, as with `kubectl apply --validate=strict`.
var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// manifest is one decoded file.
type manifest struct {
	name    string // relative to examples/
	objects []runtime.Object
}

func (m *manifest) serviceAccount(name string) *corev1.ServiceAccount {
	for _, o := range m.objects {
		if sa, ok := o.(*corev1.ServiceAccount); ok && sa.Name == name {
			return sa
		}
	}
	return nil
}

func (m *manifest) configMap(name string) *corev1.ConfigMap {
	for _, o := range m.objects {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == name {
			return cm
		}
	}
	return nil
}

// pods returns the pod templates and pods of the file.
func (m *manifest) pods() []*pod {
	var ps []*pod
	for _, o := range m.objects {
		switch o := o.(type) {
		case *appsv1.Deployment:
			ps = append(ps, &pod{where: m.name + ": Deployment " + o.Name, labels: o.Spec.Template.Labels, spec: &o.Spec.Template.Spec, deployment: true})
		case *corev1.Pod:
			ps = append(ps, &pod{where: m.name + ": Pod " + o.Name, labels: o.Labels, spec: &o.Spec})
		}
	}
	return ps
}

// pod is a pod spec with what the checks found in it.
type pod struct {
	where      string
	labels     map[string]string
	spec       *corev1.PodSpec
	deployment bool // a Deployment's template, applied with its file

	copyDir string             // where the copy initContainer puts the binary
	apps    []corev1.Container // containers that run through secrets-init
}

// readManifests decodes every Kubernetes manifest under examples/.
func readManifests(t *testing.T) []*manifest {
	t.Helper()
	var ms []*manifest
	err := filepath.WalkDir(examples, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(examples, p)
		rel = filepath.ToSlash(rel)
		if ext := path.Ext(rel); (ext != ".yaml" && ext != ".yml") || notKubernetes[rel] {
			return nil
		}
		m, err := decodeManifest(p)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		m.name = rel
		ms = append(ms, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// decodeManifest decodes the YAML documents of a file, strictly.
func decodeManifest(file string) (*manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := &manifest{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		j, err := sigsyaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, err
		}
		if s := string(bytes.TrimSpace(j)); s == "null" || s == "{}" {
			continue // comments only
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		m.objects = append(m.objects, obj)
	}
	if len(m.objects) == 0 {
		return nil, errors.New("no Kubernetes object")
	}
	return m, nil
}

// checkPod runs the checks every pod of the examples must pass, and records
// the copy directory and the containers that run through secrets-init.
func checkPod(t *testing.T, m *manifest, p *pod) {
	t.Helper()
	spec := p.spec
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range all {
		for _, vm := range c.VolumeMounts {
			v, ok := volumes[vm.Name]
			if !ok {
				t.Errorf("%s: container %s mounts volume %q, which the pod does not have", p.where, c.Name, vm.Name)
				continue
			}
			if v.ConfigMap != nil {
				cm := m.configMap(v.ConfigMap.Name)
				if cm == nil {
					t.Errorf("%s: volume %s: ConfigMap %q is not in the file", p.where, v.Name, v.ConfigMap.Name)
				} else if _, ok := cm.Data[vm.SubPath]; vm.SubPath != "" && !ok {
					t.Errorf("%s: container %s mounts key %q of ConfigMap %s, which has no such key", p.where, c.Name, vm.SubPath, cm.Name)
				}
			}
		}
	}
	if p.deployment && spec.ServiceAccountName != "" && m.serviceAccount(spec.ServiceAccountName) == nil {
		t.Errorf("%s: ServiceAccount %q is not in the file", p.where, spec.ServiceAccountName)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: the pod does not set runAsNonRoot: true (neither the copy nor secrets-init needs root)", p.where)
	}

	// The initContainer that copies secrets-init: the image's ENTRYPOINT
	// (no command, no shell) with `copy DIR` or the webhook's `cp SRC DIR`,
	// DIR an in-memory emptyDir.
	copyIndex := -1
	var copyVolume string
	for i, c := range spec.InitContainers {
		if !strings.Contains(c.Image, "/secrets-init:") {
			continue
		}
		if copyIndex >= 0 {
			t.Errorf("%s: more than one secrets-init initContainer", p.where)
		}
		copyIndex = i
		if len(c.Command) != 0 {
			t.Errorf("%s: initContainer %s sets command %q: the image's ENTRYPOINT (/secrets-init) is the program, args its subcommand (the image has no shell)", p.where, c.Name, c.Command)
		}
		switch {
		case len(c.Args) == 2 && c.Args[0] == "copy":
			p.copyDir = c.Args[1]
		case len(c.Args) == 3 && c.Args[0] == "cp" && (c.Args[1] == "/usr/local/bin/secrets-init" || c.Args[1] == "/secrets-init"):
			p.copyDir = c.Args[2]
		default:
			t.Errorf("%s: initContainer %s args %q: want copy DIR or cp /usr/local/bin/secrets-init DIR", p.where, c.Name, c.Args)
			continue
		}
		copyVolume = mountedAt(c, p.copyDir)
		v, ok := volumes[copyVolume]
		switch {
		case copyVolume == "":
			t.Errorf("%s: initContainer %s copies to %s, where nothing is mounted", p.where, c.Name, p.copyDir)
		case !ok || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory:
			t.Errorf("%s: volume %s at %s is not an emptyDir with medium: Memory", p.where, copyVolume, p.copyDir)
		}
		if c.Args[0] == "copy" {
			checkContainerSecurity(t, p.where, c)
		}
	}

	bin := path.Join(p.copyDir, "secrets-init")
	for i, c := range all {
		if i == copyIndex {
			continue
		}
		refs := checkRefs(t, p.where+": container "+c.Name, envMap(c))
		runs := len(c.Command) > 0 && c.Command[0] == bin && p.copyDir != ""
		if !runs {
			if len(refs) > 0 && copyIndex >= 0 {
				t.Errorf("%s: container %s has references but does not run through %s: it would see them raw", p.where, c.Name, bin)
			}
			continue
		}
		if i < copyIndex {
			t.Errorf("%s: initContainer %s runs %s before it is copied", p.where, c.Name, bin)
		}
		if mountedAt(c, p.copyDir) != copyVolume {
			t.Errorf("%s: container %s runs %s but does not mount volume %s at %s", p.where, c.Name, bin, copyVolume, p.copyDir)
		}
		if _, err := appIndex(c); err != nil {
			t.Errorf("%s: container %s: %v", p.where, c.Name, err)
		}
		for name, r := range refs {
			if r.FilePath == "" {
				continue
			}
			dir := path.Dir(r.FilePath)
			vm := mountAt(c, dir)
			if vm == nil || vm.ReadOnly || volumes[vm.Name].EmptyDir == nil || volumes[vm.Name].EmptyDir.Medium != corev1.StorageMediumMemory {
				t.Errorf("%s: container %s: %s writes to %s, which is not a writable in-memory emptyDir of the container", p.where, c.Name, name, dir)
			}
		}
		checkContainerSecurity(t, p.where, c)
		p.apps = append(p.apps, c)
	}
}

func checkContainerSecurity(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: container %s: want allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities.drop: [ALL]", where, c.Name)
	}
}

// appIndex returns the index of the app's program in the container's
// command line: after `--`, or after the webhook's --provider=P.
func appIndex(c corev1.Container) (int, error) {
	argv := append(slices.Clone(c.Command), c.Args...)
	if i := slices.Index(argv, "--"); i > 0 {
		if i+1 >= len(argv) {
			return 0, errors.New("nothing after --")
		}
		// Only secrets-init flags may come before the --.
		for _, a := range argv[1:i] {
			if !strings.HasPrefix(a, "-") {
				return 0, errors.New("non-flag " + a + " before --")
			}
		}
		return i + 1, nil
	}
	if len(argv) >= 3 && strings.HasPrefix(argv[1], "--provider=") {
		return 2, nil
	}
	return 0, errors.New("command line is neither BIN [FLAGS] -- APP… nor the webhook's BIN --provider=P APP…")
}

func mountedAt(c corev1.Container, dir string) string {
	if vm := mountAt(c, dir); vm != nil {
		return vm.Name
	}
	return ""
}

func mountAt(c corev1.Container, dir string) *corev1.VolumeMount {
	for i, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) == path.Clean(dir) && vm.SubPath == "" {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func envMap(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// expectation is what one example is about.
type expectation struct {
	saAnnotations []string          // on the pod's ServiceAccount
	podLabels     map[string]string // on the pod
	env           map[string]string // set in every app container ("" = any value)
	stores        []string          // referenced by the app containers
	webhook       bool              // injected by kube-secrets-init, not by the file
	extra         func(t *testing.T, m *manifest, p *pod, refs map[string]ref)
}

var expectations = map[string]expectation{
	"kubernetes/aws-irsa.yaml": {
		saAnnotations: []string{"eks.amazonaws.com/role-arn"},
		env:           map[string]string{"AWS_REGION": ""},
		stores:        []string{kindSecretsManager, kindSSM},
	},
	"kubernetes/gke-workload-identity.yaml": {
		saAnnotations: []string{"iam.gke.io/gcp-service-account"},
		stores:        []string{kindGoogle},
		extra: func(t *testing.T, m *manifest, p *pod, refs map[string]ref) {
			for _, name := range []string{"TLS_CERT_FILE", "TLS_KEY_FILE"} {
				if r, ok := refs[name]; !ok || !r.File || r.FilePath != "" {
					t.Errorf("%s: %s should be a ?file reference (a path for the app)", p.where, name)
				}
			}
		},
	},
	"kubernetes/azure-workload-identity.yaml": {
		saAnnotations: []string{"azure.workload.identity/client-id"},
		podLabels:     map[string]string{"azure.workload.identity/use": "true"},
		env:           map[string]string{"AZURE_KEY_VAULT_URL": ""},
		stores:        []string{kindAzure},
	},
	"kubernetes/vault-kubernetes-auth.yaml": {
		env:    map[string]string{"VAULT_ADDR": "", "VAULT_ROLE": "", "VAULT_AUTH_METHOD": "kubernetes"},
		stores: []string{kindVault},
		extra: func(t *testing.T, m *manifest, p *pod, refs map[string]ref) {
			// The dynamic secret: #username and #password of one read.
			u, p2 := refs["DB_USERNAME"], refs["DB_PASSWORD"]
			if u.target != p2.target || !strings.HasPrefix(u.Name, "database/creds/") || u.Key != "username" || p2.Key != "password" {
				t.Errorf("%s: want DB_USERNAME and DB_PASSWORD as #username and #password of one database/creds/ path", p.where)
			}
			if p.spec.AutomountServiceAccountToken != nil && !*p.spec.AutomountServiceAccountToken {
				t.Errorf("%s: kubernetes auth needs the service account token mounted", p.where)
			}
		},
	},
	"kubernetes/tls-nginx.yaml": {
		saAnnotations: []string{"eks.amazonaws.com/role-arn"},
		stores:        []string{kindSecretsManager},
		extra:         checkNginxTLS,
	},
	"kube-secrets-init/app.yaml": {
		saAnnotations: []string{"eks.amazonaws.com/role-arn"},
		stores:        []string{kindSecretsManager, kindSSM},
		webhook:       true,
	},
	"kube-secrets-init/mutated-pod.yaml": {
		stores: []string{kindSecretsManager, kindSSM},
	},
}

// checkNginxTLS checks that nginx reads its certificate and key from the
// files that secrets-init writes.
func checkNginxTLS(t *testing.T, m *manifest, p *pod, refs map[string]ref) {
	written := map[string]bool{}
	for _, r := range refs {
		if r.FilePath != "" {
			written[r.FilePath] = true
		}
	}
	cm := m.configMap("web-nginx")
	if cm == nil {
		t.Fatalf("%s: no ConfigMap web-nginx", p.where)
	}
	conf := cm.Data["nginx.conf"]
	directives := regexp.MustCompile(`(?m)^\s*(ssl_certificate(?:_key)?)\s+(\S+);`).FindAllStringSubmatch(conf, -1)
	if len(directives) != 2 {
		t.Fatalf("%s: want ssl_certificate and ssl_certificate_key in nginx.conf, found %q", p.where, directives)
	}
	for _, d := range directives {
		if !written[d[2]] {
			t.Errorf("%s: nginx's %s is %s, which no ?file=PATH reference writes (written: %v)", p.where, d[1], d[2], written)
		}
	}
	if !strings.Contains(strings.Join(p.apps[0].Command, " "), "daemon off;") {
		t.Errorf("%s: nginx must stay in the foreground (daemon off;) as secrets-init's child", p.where)
	}
}

// TestKubernetesManifests decodes every manifest under examples/ strictly,
// checks the wiring that makes the examples work, and runs each app
// container's command line.
func TestKubernetesManifests(t *testing.T) {
	ms := readManifests(t)
	seen := map[string]bool{}
	for _, m := range ms {
		seen[m.name] = true
		exp, ok := expectations[m.name]
		if !ok {
			t.Errorf("%s: a new manifest: add what it must show to expectations", m.name)
			continue
		}
		for _, o := range m.objects {
			if d, ok := o.(*appsv1.Deployment); ok {
				sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("%s: Deployment %s: the selector does not match the pod template's labels", m.name, d.Name)
				}
			}
		}
		pods := m.pods()
		if len(pods) != 1 {
			t.Errorf("%s: want one Deployment or Pod, found %d", m.name, len(pods))
			continue
		}
		p := pods[0]
		checkPod(t, m, p)
		if exp.webhook {
			checkWebhookTarget(t, p)
		} else if p.copyDir == "" || len(p.apps) == 0 {
			t.Errorf("%s: want an initContainer copying secrets-init into an emptyDir and an app container running through it", p.where)
		}
		if sa := m.serviceAccount(p.spec.ServiceAccountName); len(exp.saAnnotations) > 0 {
			for _, a := range exp.saAnnotations {
				if sa == nil || sa.Annotations[a] == "" {
					t.Errorf("%s: the ServiceAccount lacks annotation %s", p.where, a)
				}
			}
		}
		for k, v := range exp.podLabels {
			if p.labels[k] != v {
				t.Errorf("%s: pod label %s=%q, want %q", p.where, k, p.labels[k], v)
			}
		}
		containers := p.apps
		if exp.webhook {
			containers = p.spec.Containers
		}
		refs := map[string]ref{}
		for _, c := range containers {
			env := envMap(c)
			for k, v := range exp.env {
				if got, ok := env[k]; !ok || (v != "" && got != v) {
					t.Errorf("%s: container %s: want %s=%s", p.where, c.Name, k, v)
				}
			}
			// checkPod reported the references that do not parse.
			parsed, _ := parseRefs(t, env)
			for name, r := range parsed {
				refs[name] = r
			}
		}
		have := kinds(refs)
		for _, k := range exp.stores {
			if !have[k] {
				t.Errorf("%s: no %s reference", p.where, k)
			}
		}
		if exp.extra != nil {
			exp.extra(t, m, p, refs)
		}
		for _, c := range p.apps {
			t.Run(m.name+"/"+c.Name, func(t *testing.T) { checkAppCommandLine(t, c) })
		}
	}
	for name := range expectations {
		if !seen[name] {
			t.Errorf("%s: expected, but not found or not decoded", name)
		}
	}
}

// TestKubernetesManifestsStrict makes sure the decoding above would catch a
// broken example: a misspelt field and a wrong kind fail.
func TestKubernetesManifestsStrict(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(examples, "kubernetes", "aws-irsa.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"unknown field":   {"          volumeMounts:\n", "          volumeMount:\n"},
		"duplicate field": {"      serviceAccountName: my-app\n", "      serviceAccountName: my-app\n      serviceAccountName: other\n"},
		"unknown kind":    {"kind: Deployment\n", "kind: Deploymnet\n"},
		"wrong type":      {"  replicas: 2\n", "  replicas: two\n"},
	} {
		bad := strings.Replace(string(good), edit[0], edit[1], 1)
		if bad == string(good) {
			t.Fatalf("%s: the edit did not apply", name)
		}
		f := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := decodeManifest(f); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// webhookPrefix is kube-secrets-init's test for a value it mutates a pod
// for (hasSecretsPrefix in its cmd/secrets-init-webhook/main.go).
func webhookPrefix(v string) bool {
	return strings.HasPrefix(v, "gcp:secretmanager:") ||
		strings.HasPrefix(v, "arn:aws:secretsmanager") ||
		(strings.HasPrefix(v, "arn:aws:ssm") && strings.Contains(v, ":parameter/"))
}

// checkWebhookTarget checks a pod written for the webhook: no secrets-init
// of its own, and each container with references has one the webhook sees.
func checkWebhookTarget(t *testing.T, p *pod) {
	if p.copyDir != "" || len(p.apps) > 0 {
		t.Errorf("%s: a pod for the webhook must not inject secrets-init itself", p.where)
	}
	for _, c := range p.spec.Containers {
		refs, _ := parseRefs(t, envMap(c))
		seen := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return webhookPrefix(e.Value) })
		if len(refs) > 0 && !seen {
			t.Errorf("%s: container %s has references, but none that makes kube-secrets-init mutate the pod", p.where, c.Name)
		}
		if len(c.Command) == 0 {
			t.Errorf("%s: container %s: without a command the webhook reads the image from a registry; the example sets one", p.where, c.Name)
		}
	}
}

// webhookValues are the Helm values in kube-secrets-init/values.yaml.
type webhookValues struct {
	Provider string `json:"provider"`
	UseImage string `json:"useImage"`
}

// webhookMutate applies kube-secrets-init's mutation (mutatePod in its
// cmd/secrets-init-webhook/main.go, with the chart's --pull-policy=Always)
// to a pod spec whose containers set their command.
func webhookMutate(spec corev1.PodSpec, v webhookValues) corev1.PodSpec {
	const volumeName, volumePath = "secrets-init-bin", "/secrets-init/bin"
	spec = *spec.DeepCopy()
	mutated := false
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i, c := range list {
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return webhookPrefix(e.Value) }) {
				continue
			}
			mutated = true
			args := append(slices.Clone(c.Command), c.Args...)
			c.Command = []string{volumePath + "/secrets-init"}
			c.Args = append([]string{"--provider=" + v.Provider}, args...)
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volumeName, MountPath: volumePath})
			list[i] = c
		}
	}
	if !mutated {
		return spec
	}
	spec.InitContainers = append([]corev1.Container{{
		Name:            "copy-secrets-init",
		Image:           v.UseImage,
		ImagePullPolicy: corev1.PullAlways,
		Args:            []string{"cp", "/usr/local/bin/secrets-init", volumePath},
		VolumeMounts:    []corev1.VolumeMount{{Name: volumeName, MountPath: volumePath}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("5m"), corev1.ResourceMemory: resource.MustParse("10Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("50Mi")},
		},
	}}, spec.InitContainers...)
	spec.Volumes = append(spec.Volumes, corev1.Volume{
		Name:         volumeName,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}},
	})
	return spec
}

func readWebhookValues(t *testing.T) webhookValues {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examples, "kube-secrets-init", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v webhookValues
	if err := sigsyaml.UnmarshalStrict(data, &v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	if v.Provider == "" || !strings.Contains(v.UseImage, "/secrets-init:") {
		t.Fatalf("values.yaml: want provider and useImage (this image), got %+v", v)
	}
	return v
}

// TestWebhookMutation derives the pod of mutated-pod.yaml from app.yaml and
// values.yaml by the webhook's rules: the documented result is the real one.
func TestWebhookMutation(t *testing.T) {
	v := readWebhookValues(t)
	app, err := decodeManifest(filepath.Join(examples, "kube-secrets-init", "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mutated, err := decodeManifest(filepath.Join(examples, "kube-secrets-init", "mutated-pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl *corev1.PodTemplateSpec
	for _, o := range app.objects {
		if d, ok := o.(*appsv1.Deployment); ok {
			tmpl = &d.Spec.Template
		}
	}
	got, ok := mutated.objects[0].(*corev1.Pod)
	if tmpl == nil || !ok {
		t.Fatal("want a Deployment in app.yaml and a Pod in mutated-pod.yaml")
	}
	want := webhookMutate(tmpl.Spec, v)
	if !apiequality.Semantic.DeepEqual(want, got.Spec) {
		w, _ := json.MarshalIndent(want, "", "  ")
		g, _ := json.MarshalIndent(got.Spec, "", "  ")
		t.Errorf("mutated-pod.yaml is not what the webhook makes of app.yaml\nwant:\n%s\ngot:\n%s", w, g)
	}
	if !apiequality.Semantic.DeepEqual(tmpl.Labels, got.Labels) {
		t.Errorf("mutated-pod.yaml labels %v, want the template's %v", got.Labels, tmpl.Labels)
	}
}
