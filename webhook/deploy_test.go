package webhook_test

// The deploy/ manifests and the Helm chart: the chart renders the same
// objects as the manifests, and both hold what SPEC §11 asks of the
// deployment. Helm itself is not installable here, and its Go library would
// bring most of the Kubernetes tree: the chart sticks to Go templates with
// the three Sprig functions reimplemented below (toYaml, nindent, quote),
// which behave as Helm's do.

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/template"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const chart = "../deploy/helm/secrets-init-webhook"

func render(t *testing.T, override map[string]any) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	merge(values, override)
	funcs := template.FuncMap{
		"toYaml": func(v any) string {
			b, err := yaml.Marshal(v)
			if err != nil {
				return ""
			}
			return strings.TrimSuffix(string(b), "\n")
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"quote": func(v any) string { return strconv.Quote(fmt.Sprint(v)) },
	}
	files, _ := filepath.Glob(filepath.Join(chart, "templates", "*.yaml"))
	sort.Strings(files)
	var out bytes.Buffer
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tm, err := template.New(filepath.Base(f)).Option("missingkey=error").Funcs(funcs).Parse(string(src))
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("\n---\n")
		if err := tm.Execute(&out, map[string]any{"Values": values}); err != nil {
			t.Fatal(err)
		}
	}
	return docs(t, out.Bytes())
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if m, ok := v.(map[string]any); ok {
			if d, ok := dst[k].(map[string]any); ok {
				merge(d, m)
				continue
			}
		}
		dst[k] = v
	}
}

func docs(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range strings.Split("\n"+string(b), "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("%v in:\n%s", err, d)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func key(m map[string]any) string {
	md, _ := m["metadata"].(map[string]any)
	return fmt.Sprintf("%v/%v/%v", m["kind"], md["namespace"], md["name"])
}

func byKey(objs []map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range objs {
		out[key(o)] = o
	}
	return out
}

func manifests(t *testing.T) []map[string]any {
	b, err := os.ReadFile("../deploy/secrets-init-webhook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return docs(t, b)
}

func TestChartRendersTheManifests(t *testing.T) {
	want, got := byKey(manifests(t)), byKey(render(t, nil))
	if len(want) != len(got) {
		t.Errorf("manifests have %d objects, the chart %d", len(want), len(got))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("the chart lacks %s", k)
			continue
		}
		if !reflect.DeepEqual(w, g) {
			wb, _ := yaml.Marshal(w)
			gb, _ := yaml.Marshal(g)
			t.Errorf("%s differs:\nmanifest:\n%s\nchart:\n%s", k, wb, gb)
		}
	}
}

func TestChartWithCertManager(t *testing.T) {
	got := byKey(render(t, map[string]any{
		"namespace": "security",
		"tls":       map[string]any{"selfSigned": false, "certManagerIssuer": "ca-issuer"},
		"extraArgs": []any{"--log-level=debug"},
	}))
	if _, ok := got["Certificate/security/secrets-init-webhook"]; !ok {
		t.Error("no Certificate")
	}
	if _, ok := got["Role/security/secrets-init-webhook"]; ok {
		t.Error("a Role for the self-signed CA without self-signed mode")
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	decode(t, got["MutatingWebhookConfiguration/<nil>/secrets-init-webhook"], &mwc)
	if mwc.Annotations["cert-manager.io/inject-ca-from"] != "security/secrets-init-webhook" {
		t.Errorf("annotations %v", mwc.Annotations)
	}
	var dep appsv1.Deployment
	decode(t, got["Deployment/security/secrets-init-webhook"], &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--tls-cert=/tls/tls.crt --tls-key=/tls/tls.key") || strings.Contains(args, "self-signed") || !strings.HasSuffix(args, "--log-level=debug") {
		t.Errorf("args %q", args)
	}
	if len(dep.Spec.Template.Spec.Volumes) != 1 || dep.Spec.Template.Spec.Volumes[0].Secret.SecretName != "secrets-init-webhook-tls" {
		t.Errorf("volumes %+v", dep.Spec.Template.Spec.Volumes)
	}
}

// decode reads obj into a typed API object, refusing unknown fields.
func decode(t *testing.T, obj map[string]any, into any) {
	t.Helper()
	if obj == nil {
		t.Fatalf("no object for %T", into)
	}
	b, _ := yaml.Marshal(obj)
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", key(obj), err)
	}
}

func TestManifests(t *testing.T) {
	objs := byKey(manifests(t))
	for k, o := range objs {
		var into any
		switch o["kind"] {
		case "Namespace":
			into = &corev1.Namespace{}
		case "ServiceAccount":
			into = &corev1.ServiceAccount{}
		case "Service":
			into = &corev1.Service{}
		case "ClusterRole", "Role":
			into = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding", "RoleBinding":
			into = &rbacv1.ClusterRoleBinding{}
		case "Deployment":
			into = &appsv1.Deployment{}
		case "PodDisruptionBudget":
			into = &policyv1.PodDisruptionBudget{}
		case "MutatingWebhookConfiguration":
			into = &admissionregistrationv1.MutatingWebhookConfiguration{}
		default:
			t.Errorf("unexpected %s", k)
			continue
		}
		decode(t, o, into)
	}

	var dep appsv1.Deployment
	decode(t, objs["Deployment/secrets-init/secrets-init-webhook"], &dep)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Error("not 2 replicas")
	}
	var pdb policyv1.PodDisruptionBudget
	decode(t, objs["PodDisruptionBudget/secrets-init/secrets-init-webhook"], &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Error("PDB")
	}
	var ns corev1.Namespace
	decode(t, objs["Namespace/<nil>/secrets-init"], &ns)
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Error("the webhook's namespace does not enforce restricted")
	}
	sc := dep.Spec.Template.Spec.Containers[0].SecurityContext
	if sc == nil || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
		t.Error("webhook container securityContext")
	}

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	decode(t, objs["MutatingWebhookConfiguration/<nil>/secrets-init-webhook"], &mwc)
	if len(mwc.Webhooks) != 1 {
		t.Fatal("webhooks")
	}
	w := mwc.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		*w.TimeoutSeconds > 10 || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("webhook policies %+v", w)
	}
	if w.ObjectSelector.MatchLabels["secrets-init.io/inject"] != "enabled" {
		t.Error("no opt-in objectSelector")
	}
	excluded := false
	for _, e := range w.NamespaceSelector.MatchExpressions {
		if e.Key == "kubernetes.io/metadata.name" && e.Operator == "NotIn" && reflect.DeepEqual(e.Values[:1], []string{"secrets-init"}) {
			excluded = true
		}
	}
	if !excluded {
		t.Error("the webhook's own namespace is not excluded")
	}
	if len(w.Rules) != 1 || !reflect.DeepEqual(w.Rules[0].Operations, []admissionregistrationv1.OperationType{"CREATE"}) || !reflect.DeepEqual(w.Rules[0].Resources, []string{"pods"}) {
		t.Errorf("rules %+v", w.Rules)
	}

	// Least privilege: reads are get only; the one write is the caBundle of
	// its own configuration, and creating its CA Secret in its namespace.
	var cr rbacv1.ClusterRole
	decode(t, objs["ClusterRole/<nil>/secrets-init-webhook"], &cr)
	for _, r := range cr.Rules {
		for _, v := range r.Verbs {
			if v == "get" {
				continue
			}
			if v != "patch" || !reflect.DeepEqual(r.Resources, []string{"mutatingwebhookconfigurations"}) || !reflect.DeepEqual(r.ResourceNames, []string{"secrets-init-webhook"}) {
				t.Errorf("ClusterRole grants %s on %v %v", v, r.Resources, r.ResourceNames)
			}
		}
	}
	var role rbacv1.ClusterRole
	decode(t, objs["Role/secrets-init/secrets-init-webhook"], &role)
	if len(role.Rules) != 1 || !reflect.DeepEqual(role.Rules[0].Resources, []string{"secrets"}) {
		t.Errorf("Role %+v", role.Rules)
	}
}

var updateDeploy = flag.Bool("update", false, "rewrite deploy/secrets-init-webhook-decrypt-secrets.yaml from the chart")

const decryptManifests = "../deploy/secrets-init-webhook-decrypt-secrets.yaml"

// The /secrets webhook is off by default; deploy/…-decrypt-secrets.yaml is
// the chart rendered with decryptSecrets.enabled, and adds only the second
// webhook entry and the flag (RBAC is unchanged: the values come in the
// AdmissionReview, the keys from the KMS).
func TestChartWithDecryptSecrets(t *testing.T) {
	objs := render(t, map[string]any{"decryptSecrets": map[string]any{"enabled": true}})
	if *updateDeploy {
		// In the order of the manifests (kubectl apply creates the
		// Namespace first).
		order := map[string]int{}
		for i, o := range manifests(t) {
			order[key(o)] = i + 1
		}
		sort.SliceStable(objs, func(i, j int) bool { return order[key(objs[i])] < order[key(objs[j])] })
		var b bytes.Buffer
		b.WriteString("# The manifests of secrets-init-webhook.yaml with the /secrets endpoint on\n" +
			"# (the Helm chart with decryptSecrets.enabled=true; regenerate with\n" +
			"# `cd webhook && go test . -run TestChartWithDecryptSecrets -update`). See docs/kubernetes.md.\n")
		for i, o := range objs {
			y, _ := yaml.Marshal(o)
			if i > 0 {
				b.WriteString("---\n")
			}
			b.Write(y)
		}
		os.WriteFile(decryptManifests, b.Bytes(), 0o644)
	}
	raw, err := os.ReadFile(decryptManifests)
	if err != nil {
		t.Fatal(err)
	}
	want, got := byKey(docs(t, raw)), byKey(objs)
	if len(want) != len(got) {
		t.Errorf("%s has %d objects, the chart %d", decryptManifests, len(want), len(got))
	}
	for k, w := range want {
		if !reflect.DeepEqual(w, got[k]) {
			t.Errorf("%s differs from the chart's", k)
		}
	}

	def := byKey(render(t, nil))
	for k, o := range got {
		switch o["kind"] {
		case "MutatingWebhookConfiguration", "Deployment":
		default:
			if !reflect.DeepEqual(o, def[k]) {
				t.Errorf("%s changes with decryptSecrets.enabled", k)
			}
		}
	}
	var mwc, defMWC admissionregistrationv1.MutatingWebhookConfiguration
	decode(t, got["MutatingWebhookConfiguration/<nil>/secrets-init-webhook"], &mwc)
	decode(t, def["MutatingWebhookConfiguration/<nil>/secrets-init-webhook"], &defMWC)
	if len(mwc.Webhooks) != 2 || len(defMWC.Webhooks) != 1 || !reflect.DeepEqual(mwc.Webhooks[0], defMWC.Webhooks[0]) {
		t.Fatalf("webhooks: %d, by default %d", len(mwc.Webhooks), len(defMWC.Webhooks))
	}
	w := mwc.Webhooks[1]
	if w.ClientConfig.Service == nil || *w.ClientConfig.Service.Path != "/secrets" {
		t.Errorf("clientConfig %+v", w.ClientConfig)
	}
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.SideEffects != admissionregistrationv1.SideEffectClassNone || *w.TimeoutSeconds > 10 {
		t.Errorf("policies %+v", w)
	}
	if w.ObjectSelector == nil || !reflect.DeepEqual(w.ObjectSelector.MatchLabels, map[string]string{"secrets-init.io/decrypt": "jwe"}) {
		t.Errorf("objectSelector %+v", w.ObjectSelector)
	}
	if len(w.Rules) != 1 || !reflect.DeepEqual(w.Rules[0].Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}) ||
		!reflect.DeepEqual(w.Rules[0].Resources, []string{"secrets"}) || !reflect.DeepEqual(w.Rules[0].APIGroups, []string{""}) {
		t.Errorf("rules %+v", w.Rules)
	}
	var dep, defDep appsv1.Deployment
	decode(t, got["Deployment/secrets-init/secrets-init-webhook"], &dep)
	decode(t, def["Deployment/secrets-init/secrets-init-webhook"], &defDep)
	args, defArgs := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "), strings.Join(defDep.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--decrypt-secrets") || strings.Contains(defArgs, "--decrypt-secrets") || strings.Contains(args, "--jwe-detect") {
		t.Errorf("args %q, by default %q", args, defArgs)
	}
}

func TestChartDecryptSecretsOptions(t *testing.T) {
	on := map[string]any{"enabled": true, "jweDetect": true, "keySecret": "jwe-keys",
		"env": []any{map[string]any{"name": "SECRETS_INIT_JWE_KEY", "value": "file:/keys/key.pem"}}}
	for _, selfSigned := range []bool{true, false} {
		got := byKey(render(t, map[string]any{"decryptSecrets": on, "tls": map[string]any{"selfSigned": selfSigned}}))
		var dep appsv1.Deployment
		decode(t, got["Deployment/secrets-init/secrets-init-webhook"], &dep)
		pod := dep.Spec.Template.Spec
		c := pod.Containers[0]
		if args := strings.Join(c.Args, " "); !strings.Contains(args, "--decrypt-secrets --jwe-detect") {
			t.Errorf("args %q", args)
		}
		if len(c.Env) != 2 || c.Env[1].Name != "SECRETS_INIT_JWE_KEY" || c.Env[1].Value != "file:/keys/key.pem" {
			t.Errorf("env %+v", c.Env)
		}
		vols := map[string]string{}
		for _, v := range pod.Volumes {
			vols[v.Name] = v.Secret.SecretName
		}
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		if vols["jwe-keys"] != "jwe-keys" || mounts["jwe-keys"] != "/keys" || (vols["tls"] != "") == selfSigned || len(vols) != len(mounts) {
			t.Errorf("selfSigned %v: volumes %v mounts %v", selfSigned, vols, mounts)
		}
	}
	// Off, its options render nothing.
	got := byKey(render(t, map[string]any{"decryptSecrets": map[string]any{"enabled": false, "jweDetect": true, "keySecret": "jwe-keys", "env": on["env"]}}))
	if !reflect.DeepEqual(got, byKey(render(t, nil))) {
		t.Error("decryptSecrets options render something while it is off")
	}
}

// The chart's identity values: the service account's annotations, the
// pod's labels and more environment, as AKS workload identity needs them
// (and IRSA, GKE Workload Identity: annotations only).
func TestChartIdentity(t *testing.T) {
	got := byKey(render(t, map[string]any{
		"serviceAccount": map[string]any{"annotations": map[string]any{"azure.workload.identity/client-id": "0000-client"}},
		"podLabels":      map[string]any{"azure.workload.identity/use": "true"},
		"env":            []any{map[string]any{"name": "AZURE_TENANT_ID", "value": "tenant"}},
	}))
	sa := got["ServiceAccount/secrets-init/secrets-init-webhook"]
	if ann, _ := sa["metadata"].(map[string]any)["annotations"].(map[string]any); ann["azure.workload.identity/client-id"] != "0000-client" {
		t.Errorf("service account annotations %v", ann)
	}
	d := got["Deployment/secrets-init/secrets-init-webhook"]
	tmpl := d["spec"].(map[string]any)["template"].(map[string]any)
	labels := tmpl["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["azure.workload.identity/use"] != "true" || labels["app.kubernetes.io/name"] != "secrets-init-webhook" {
		t.Errorf("pod labels %v", labels)
	}
	c := tmpl["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	var names []string
	for _, e := range c["env"].([]any) {
		names = append(names, e.(map[string]any)["name"].(string))
	}
	if !reflect.DeepEqual(names, []string{"POD_NAMESPACE", "AZURE_TENANT_ID"}) {
		t.Errorf("env %v", names)
	}
	// The pod selector stays the chart's own.
	if sel := d["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any); len(sel) != 1 {
		t.Errorf("selector %v", sel)
	}
}
