package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const manifests = "testdata/manifests"

// flags scope every reference of testdata/manifests.
var flags = []string{
	"--aws-region", "eu-west-1", "--aws-account", "111122223333",
	"--google-project", "dev-project",
	"--azure-key-vault-url", "https://dev-vault.vault.azure.net",
	"--azure-subscription", "00000000-0000-0000-0000-000000000001", "--azure-resource-group", "secrets",
	"--vault-kv2", "kv",
}

// run runs Main with args and stdin.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &o, &e)
	return o.String(), e.String(), code
}

func TestReadYAML(t *testing.T) {
	uses, err := ReadPaths([]string{manifests + "/workloads.yaml", manifests + "/compose.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range uses {
		got = append(got, u.Where()+" "+u.ServiceAccount+" "+u.Var+"="+u.Value)
	}
	f, c := manifests+"/workloads.yaml: ", manifests+"/compose.yaml: "
	want := []string{
		f + "Deployment/prod/web container migrate prod/web DB_PASSWORD=aws:secretsmanager:prod/db:password",
		f + "Deployment/prod/web container app prod/web DB_PASSWORD=aws:secretsmanager:prod/db:password",
		f + "Deployment/prod/web container app prod/web API_TOKEN=arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/api-AbC123:token",
		f + "Deployment/prod/web container app prod/web STRIPE=arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/stripe",
		f + "Deployment/prod/web container app prod/web DB_HOST=aws:ssm:/prod/db/host",
		f + "Deployment/prod/web container app prod/web FEATURE_FLAGS=arn:aws:ssm:eu-west-1:111122223333:parameter/prod/flags:3",
		f + "Deployment/prod/web container app prod/web LOG_LEVEL=info",
		f + "Deployment/prod/web container app prod/web REPLICAS=3",
		f + "StatefulSet/prod/queue container queue prod/web QUEUE_PASSWORD=vault:kv/prod/queue#password",
		f + "DaemonSet/ops/agent container agent ops/default AGENT_KEY=gcp:secretmanager:projects/ops-project/secrets/agent-key",
		f + "ReplicaSet/ops/legacy container legacy ops/legacy LEGACY_CERT=gcp:secretmanager:projects/ops-project/locations/europe-west1/secrets/legacy-cert?file",
		f + "Pod/default/debug container debug default/default AZ_SECRET=azure:keyvault:https://ops-vault.vault.azure.net/secrets/debug-token",
		f + "CronJob/batch/report container report batch/reporter REPORT_DB=vault:database/creds/report#password",
		f + "CronJob/batch/report container report batch/reporter REPORT_API=@Microsoft.KeyVault(VaultName=reports;SecretName=api-key)",
		f + "Job/batch/backfill container backfill batch/reporter REPORT_DB=vault:database/creds/report#username",
		f + "Job/batch/backfill container backfill batch/reporter SIGNING_KEY=vault:secret/data/signing#key#2",
		f + "Pod/prod/listed container c prod/web LISTED=aws:ssm:prod/listed",
		c + "compose/api  DB_PASSWORD=aws:secretsmanager:dev/db:password",
		c + "compose/api  TOKEN=vault:kv/dev/api#token",
		c + "compose/worker  QUEUE=vault:kv/dev/queue#url",
		c + "compose/worker  PLAIN=hello",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReadDotenv(t *testing.T) {
	uses, err := ReadPaths([]string{manifests + "/app.env"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range uses {
		got = append(got, u.Group("serviceaccount")+" "+u.Var+"="+u.Value)
	}
	g := "dotenv/" + manifests + "/app.env "
	want := []string{g + "GCP_SHORT=gcp:secretmanager:short-secret#user", g + "AZ_SHORT=azure:keyvault:short-name", g + "LOCAL=secretfile:/run/secrets/local"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestGroups(t *testing.T) {
	out, stderr, code := run(t, "", append([]string{"-f", manifests}, flags...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for by, want := range map[string][]string{
		"serviceaccount": {"compose/api", "compose/worker", "dotenv/testdata/manifests/app.env", "serviceaccount/batch/reporter",
			"serviceaccount/default/default", "serviceaccount/ops/default", "serviceaccount/ops/legacy", "serviceaccount/prod/web"},
		"workload": {"CronJob/batch/report", "DaemonSet/ops/agent", "Deployment/prod/web", "Job/batch/backfill", "Pod/default/debug",
			"Pod/prod/listed", "ReplicaSet/ops/legacy", "StatefulSet/prod/queue", "compose/api", "compose/worker", "dotenv/testdata/manifests/app.env"},
		"none": {"secrets-init"},
	} {
		out, stderr, code = run(t, "", append([]string{"-f", manifests, "--group-by", by}, flags...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			got = append(got, strings.Fields(line)[0])
		}
		slices.Sort(got)
		if got = slices.Compact(got); !slices.Equal(got, want) {
			t.Errorf("--group-by %s: groups %q, want %q", by, got, want)
		}
	}
}

// TestDeterministic: two runs, and runs over the same inputs in another
// order, print the same bytes, for every format.
func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(manifests + "/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The same documents in reverse order, and one of them twice.
	docs := strings.Split(string(data), "\n---\n")
	slices.Reverse(docs)
	docs = append(docs, docs[0])
	os.WriteFile(filepath.Join(dir, "reversed.yaml"), []byte(strings.Join(docs, "\n---\n")), 0o644)
	for f := range Formats {
		a, _, code := run(t, "", append([]string{"-f", manifests, "--format", f}, flags...)...)
		b, _, _ := run(t, "", append([]string{"-f", manifests, "--format", f}, flags...)...)
		if code != 0 || a != b || a == "" {
			t.Errorf("%s: two runs differ (exit %d)", f, code)
		}
		if f == "summary" {
			continue // its SOURCE column names the file
		}
		x, _, _ := run(t, "", append([]string{"-f", manifests + "/workloads.yaml", "--format", f}, flags...)...)
		y, _, _ := run(t, "", append([]string{"-f", filepath.Join(dir, "reversed.yaml"), "--format", f}, flags...)...)
		if x != y {
			t.Errorf("%s: the order of the documents changes the output:\n%s\n----\n%s", f, x, y)
		}
	}
}

func TestStdin(t *testing.T) {
	data, err := os.ReadFile(manifests + "/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := run(t, string(data), append([]string{"-f", "-", "--format", "aws"}, flags...)...)
	b, _, _ := run(t, "", append([]string{"-f", manifests + "/workloads.yaml", "--format", "aws"}, flags...)...)
	if a != b || !strings.Contains(a, "prod/db-??????") {
		t.Errorf("stdin and file differ:\n%s\n%s", a, b)
	}
}

// TestAWSResources checks the resource rules of §10 on the JSON itself.
func TestAWSResources(t *testing.T) {
	out, stderr, code := run(t, "", append([]string{"-f", manifests + "/workloads.yaml", "--format", "aws", "--group", "serviceaccount/prod/web", "--refresh",
		"--kms-key", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}, flags...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc awsDocument
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, st := range doc.Statement {
		got[strings.Join(st.Action, " ")] = st.Resource
	}
	want := map[string][]string{
		"kms:Decrypt":                        {"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
		"secretsmanager:BatchGetSecretValue": {"*"},
		"secretsmanager:DescribeSecret secretsmanager:GetSecretValue": {
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/api-AbC123",    // a complete ARN: exact
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-??????",     // a name
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/stripe-??????", // a partial ARN
		},
		"ssm:GetParameter ssm:GetParameters": {
			"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/db/host", // /prod/db/host
			"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/flags",   // an ARN with a version
			"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/listed",  // prod/listed, no leading /
		},
	}
	if len(got) != len(want) {
		t.Errorf("statements %v, want %v", got, want)
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("%s on %q, want %q", k, got[k], w)
		}
	}

	// --no-batch drops BatchGetSecretValue; without --refresh no DescribeSecret.
	out, _, _ = run(t, "", append([]string{"-f", manifests + "/workloads.yaml", "--format", "aws", "--group", "serviceaccount/prod/web", "--no-batch"}, flags...)...)
	if strings.Contains(out, "BatchGetSecretValue") || strings.Contains(out, "DescribeSecret") || strings.Contains(out, `"*"`) {
		t.Errorf("--no-batch without --refresh:\n%s", out)
	}
}

func TestVaultPaths(t *testing.T) {
	out, stderr, code := run(t, "", append([]string{"-f", manifests, "--format", "vault", "--group-by", "none", "--refresh"}, flags...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var paths []string
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "path "); ok {
			paths = append(paths, strings.TrimSuffix(p, " {"))
		}
	}
	want := []string{
		`"database/creds/report"`,                                          // a dynamic secret, as written
		`"kv/data/dev/api"`, `"kv/data/dev/queue"`, `"kv/data/prod/queue"`, // --vault-kv2 kv
		`"kv/metadata/dev/api"`, `"kv/metadata/dev/queue"`, `"kv/metadata/prod/queue"`, // --refresh
		`"secret/data/signing"`,                     // not a --vault-kv2 mount: as written
		`"sys/leases/renew"`, `"sys/leases/revoke"`, // --refresh, for the paths that may be dynamic
	}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
	if n := strings.Count(out, `capabilities = ["read"]`); n != len(want)-2 {
		t.Errorf("%d read grants, want %d:\n%s", n, len(want)-2, out)
	}
	if n := strings.Count(out, `capabilities = ["update"]`); n != 2 {
		t.Errorf("%d update grants, want 2 (sys/leases/renew and revoke):\n%s", n, out)
	}
}

// TestVaultRefreshLeases: --refresh grants "update" on sys/leases/renew
// and sys/leases/revoke (once per policy) when a Vault reference may come
// with a lease — any path but one under a --vault-kv2 mount, and a write —
// and never without --refresh, for KV v2 paths alone, or without Vault
// references.
func TestVaultRefreshLeases(t *testing.T) {
	leases := "path \"sys/leases/renew\" {\n  capabilities = [\"update\"]\n}\n\npath \"sys/leases/revoke\" {\n  capabilities = [\"update\"]\n}\n"
	for _, c := range []struct {
		name  string
		env   string
		flags []string
		want  bool
	}{
		{"dynamic", "A=vault:database/creds/app#username\nB=vault:database/creds/app#password\nC=vault:database/creds/other#password\n", []string{"--refresh"}, true},
		{"dynamic without --refresh", "A=vault:database/creds/app#username\n", nil, false},
		{"KV v1 or unknown mount", "A=vault:secret/app#token\n", []string{"--refresh"}, true},
		{"KV v2 only", "A=vault:kv/app#token\nB=vault:kv/data/other#token\n", []string{"--refresh", "--vault-kv2", "kv"}, false},
		{"KV v2 and dynamic", "A=vault:kv/app#token\nB=vault:database/creds/app#password\n", []string{"--refresh", "--vault-kv2", "kv"}, true},
		{"write", "CERT=>>vault:pki/issue/web#certificate#{\"common_name\":\"web.example.com\"}?file\n", []string{"--refresh"}, true},
		{"no Vault reference", "A=aws:ssm:/app/x\nB=secretfile:/run/secrets/x\n", []string{"--refresh"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := filepath.Join(t.TempDir(), "app.env")
			if err := os.WriteFile(env, []byte(c.env), 0o644); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := run(t, "", append([]string{"-f", env, "--format", "vault", "--group-by", "none", "--aws-region", "eu-west-1", "--aws-account", "111122223333"}, c.flags...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := strings.Count(out, "sys/leases/"); c.want && (got != 2 || !strings.HasSuffix(out, leases)) || !c.want && got != 0 {
				t.Errorf("lease grants: got %d, want them: %v\n%s", got, c.want, out)
			}
			if strings.Contains(out, "sys/leases/lookup") || strings.Contains(out, "auth/token") {
				t.Errorf("grants what Vault's default policy has:\n%s", out)
			}
		})
	}
}

// TestUnscoped: each reference that lacks a region, account, project,
// vault, subscription or resource group gets one line naming the
// variable, the reference and the flag; nothing is printed on stdout.
func TestUnscoped(t *testing.T) {
	out, stderr, code := run(t, "", "-f", manifests, "--format", "summary")
	if code != 125 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	want := []string{
		"secrets-init policy: testdata/manifests/app.env: AZ_SHORT: azure:keyvault:short-name: the reference does not name the key vault, the vault's subscription and the vault's resource group: give --azure-key-vault-url, --azure-subscription and --azure-resource-group",
		"secrets-init policy: testdata/manifests/app.env: GCP_SHORT: gcp:secretmanager:short-secret#user: the reference does not name the Google Cloud project: give --google-project",
		"secrets-init policy: testdata/manifests/compose.yaml: compose/api: DB_PASSWORD: aws:secretsmanager:dev/db:password: the reference does not name the AWS region and the AWS account: give --aws-region and --aws-account",
		"secrets-init policy: testdata/manifests/workloads.yaml: CronJob/batch/report container report: REPORT_API: @Microsoft.KeyVault(VaultName=reports;SecretName=api-key): the reference does not name the vault's subscription and the vault's resource group: give --azure-subscription and --azure-resource-group",
	}
	var aws, az, gcp int
	for _, l := range lines {
		switch {
		case strings.Contains(l, "give --aws-region and --aws-account"):
			aws++
		case strings.Contains(l, "--azure-subscription and --azure-resource-group"):
			az++
		case strings.Contains(l, "give --google-project"):
			gcp++
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	// Short AWS: DB_PASSWORD (in two containers of web), DB_HOST, LISTED,
	// compose's DB_PASSWORD; ARNs need nothing. Azure: both vaults lack a
	// subscription and a resource group, the short name also a vault.
	if aws != 5 || az != 3 || gcp != 1 {
		t.Errorf("%d AWS, %d Azure, %d Google lines, want 5, 3, 1:\n%s", aws, az, gcp, stderr)
	}
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("no line %q in\n%s", w, stderr)
		}
	}

	// A format needs only its own store's flags.
	out, stderr, code = run(t, "", "-f", manifests, "--format", "vault")
	if code != 0 || stderr != "" || !strings.Contains(out, `path "kv/dev/api"`) {
		t.Errorf("vault without flags: exit %d, %s\n%s", code, stderr, out)
	}
}

// TestExamples: the project's own example manifests are scoped by their
// own AWS_REGION, GOOGLE_CLOUD_PROJECT and AZURE_KEY_VAULT_URL plus the
// flags no manifest can give.
func TestExamples(t *testing.T) {
	out, stderr, code := run(t, "", "-f", "../examples/kubernetes", "-f", "../examples/kube-secrets-init", "--format", "summary",
		"--aws-account", "123456789012", "--azure-subscription", "s", "--azure-resource-group", "g")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{
		"aws secretsmanager:GetSecretValue arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/my-app/signing-key-??????",
		"gcp roles/secretmanager.secretAccessor projects/my-project/secrets/api-key",
		"azure Key Vault Secrets User /subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/my-vault/secrets/db-password",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestMalformed(t *testing.T) {
	const canary = "CANARY-value-7f3a"
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.env"), []byte("BAD=vault:a#b#c#d\nOK=vault:kv/x\nPLAIN="+canary+"\n"), 0o644)
	out, stderr, code := run(t, "", "-f", dir, "--format", "vault")
	if code != 125 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	want := "secrets-init policy: " + filepath.Join(dir, "bad.env") + ": BAD: vault:a#b#c#d: malformed reference: too many '#' (want vault:PATH[#KEY[#VERSION]])\n"
	if stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if strings.Contains(stderr, canary) {
		t.Error("a value that is no reference reached stderr")
	}
}

func TestGlobPaths(t *testing.T) {
	_, stderr, code := run(t, "X: 1\n", "--env-file", writeFile(t, "a.env", "A=vault:kv/app/*\nB=vault:kv/+/x\n"), "--format", "vault")
	if code != 125 || strings.Count(stderr, "cannot be granted exactly") != 2 {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no input"},
		{[]string{"-f", manifests, "--format", "xml"}, `--format "xml"`},
		{[]string{"-f", manifests, "--group-by", "team"}, `--group-by "team"`},
		{[]string{"-f", manifests, "extra"}, `unexpected argument "extra"`},
		{[]string{"-f", "-", "-f", "-"}, "-f - is given twice"},
		{[]string{"-f", manifests, "--kms-key", "alias/x"}, `--kms-key "alias/x"`},
		{[]string{"-f", manifests, "--kms-key", "arn:aws:kms:eu-west-1:1:key/*"}, "want a key ARN"},
		{[]string{"-f", "/nonexistent"}, "/nonexistent"},
		{[]string{"-f", manifests, "--aws-partition", "gcp"}, "--aws-partition"},
		{[]string{"-f", manifests, "--azure-key-vault-url", "myvault"}, "want https://NAME.vault.azure.net"},
		{[]string{"--bogus"}, "-bogus"},
	} {
		_, stderr, code := run(t, "", c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q", c.args, code, stderr, c.want)
		}
	}
	out, _, code := run(t, "", "--help")
	if code != 0 || !strings.Contains(out, "-group-by G") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	_, stderr, code := run(t, "", "-f", manifests, "--group", "serviceaccount/nope/nope", "--format", "vault")
	if code != 125 || !strings.Contains(stderr, `no vault references for group "serviceaccount/nope/nope" (the groups with references: compose/api, compose/worker, dotenv/`) {
		t.Errorf("unknown --group: exit %d, %s", code, stderr)
	}
}

// TestBadYAML: a document that does not parse is a usage error naming the
// input and the document; no value of it reaches stderr.
func TestBadYAML(t *testing.T) {
	const canary = "CANARY-3c1e"
	for _, in := range []string{
		"kind: Pod\nmetadata: [\n",
		"kind: Pod\nspec: {containers: [{env: [{name: A, value: \"" + canary + "}]}]}\n",
		"a: 1\n---\nservices:\n  x:\n    environment:\n      - " + canary + "\n     - bad indent " + canary + "\n",
		"key: '" + canary + "\n",
		"\t" + canary + ": x\n",
		"&a [*a, " + canary + "]",
	} {
		_, stderr, code := run(t, in, "-f", "-")
		if code != 2 || !strings.Contains(stderr, "-: document ") {
			t.Errorf("%q: exit %d, %s", in, code, stderr)
		}
		if strings.Contains(stderr, canary) {
			t.Errorf("%q: stderr holds a value: %s", in, stderr)
		}
	}
	_, stderr, code := run(t, "", "--env-file", writeFile(t, "x.env", "A='"+canary+"\n"))
	if code != 2 || strings.Contains(stderr, canary) || !strings.Contains(stderr, "x.env") {
		t.Errorf("dotenv: exit %d, %s", code, stderr)
	}
}

func TestLabels(t *testing.T) {
	l := labeler([]string{"a-b", "a_b", "c"}, tfLabel)
	if l["c"] != "c" || l["a-b"] == l["a_b"] || !strings.HasPrefix(l["a-b"], "a_b_") {
		t.Errorf("labels %v", l)
	}
	if tfLabel("9/x") != "g_9_x" {
		t.Errorf("tfLabel(9/x) = %q", tfLabel("9/x"))
	}
	if got := shellWord("it's"); got != `'it'\''s'` {
		t.Errorf("shellWord = %s", got)
	}
	if got := hclString(`a"${b}\`); got != `"a\"$${b}\\"` {
		t.Errorf("hclString = %s", got)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJWEKeyGrants: each key scheme's grant, and the key URIs that are
// refused (as their KMS refuses them, or because no exact grant exists).
func TestJWEKeyGrants(t *testing.T) {
	o := Options{AzureSubscription: "sub", AzureGroup: "rg"}
	for _, c := range []struct{ key, want, err string }{
		{key: "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/k-1", want: "aws kms:Decrypt arn:aws:kms:eu-west-1:111122223333:key/k-1"},
		{key: "aws-kms://arn:aws-cn:kms:cn-north-1:111122223333:key/k-1", want: "aws kms:Decrypt arn:aws-cn:kms:cn-north-1:111122223333:key/k-1"},
		{key: "aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/app", err: "is an alias"},
		{key: "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/*", err: "a glob"},
		{key: "gcp-kms://projects/*/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1", err: "a glob"},
		{key: "hcvault://transit/+/keys/app/versions/1", err: "a glob"},
		{key: "aws-kms://arn:aws:s3:eu-west-1:111122223333:key/k", err: "not a key URI of its scheme"},
		{key: "gcp-kms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1", want: "gcp roles/cloudkms.cryptoKeyDecrypter projects/p/locations/global/keyRings/r/cryptoKeys/k"},
		{key: "gcp-kms://projects/p/locations/global/keyRings/r/cryptoKeys/k", err: "not a key URI of its scheme"},
		{key: "azure-kv://KV.vault.azure.net/keys/k/v1", want: "azure " + azureKeyRole + " /subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k"},
		{key: "azure-kv://kv.vault.azure.net/keys/k", want: "azure " + azureKeyRole + " /subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k"},
		{key: "azure-kv://kv.vault.azure.net/secrets/k", err: "not a key URI of its scheme"},
		{key: "azure-kv://hsm.managedhsm.azure.net/keys/k/v", err: "Managed HSM"},
		{key: "hcvault://transit/keys/app/versions/2", want: "vault update transit/decrypt/app"},
		{key: "hcvault://team/a/transit/keys/keys/versions/1", want: "vault update team/a/transit/decrypt/keys"},
		{key: "hcvault://transit/keys/app", err: "not a key URI of its scheme"},
		{key: "hcvault://transit/keys/app/versions/0", err: "not a key URI of its scheme"},
		{key: "hcvault://tr*nsit/keys/app/versions/1", err: "a glob"},
		{key: "file:/keys/dev.pem", want: ""},
	} {
		gs, err := o.jweKey(c.key)
		var got []string
		for _, g := range gs {
			got = append(got, string(g.Store)+" "+g.Action+" "+g.Resource)
		}
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %q, %v; want error %q", c.key, got, err, c.err)
		case c.err == "" && (err != nil || strings.Join(got, "\n") != c.want):
			t.Errorf("%s: %q, %v; want %q", c.key, got, err, c.want)
		}
	}
	if _, err := (&Options{}).jweKey("azure-kv://kv.vault.azure.net/keys/k/v"); err == nil || !strings.Contains(err.Error(), "--azure-subscription and --azure-resource-group") {
		t.Errorf("an Azure key without the flags: %v", err)
	}
}

// TestJWEDetect: a bare JWE is a reference only where the workload sets
// SECRETS_INIT_JWE_DETECT=1, and a malformed long JWE is shown cut.
func TestJWEDetect(t *testing.T) {
	const bare = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiaGN2YXVsdDovL3RyYW5zaXQva2V5cy9hcHAvdmVyc2lvbnMvMSJ9.AAAA.AAAA.AAAA.AAAA"
	gen := func(env ...string) (string, []string) {
		var uses []Use
		for i := 0; i < len(env); i += 2 {
			uses = append(uses, Use{File: "app.env", Workload: "dotenv", Var: env[i], Value: env[i+1]})
		}
		out, errs := Generate(Request{Uses: withContext(uses), Format: "vault", GroupBy: "none"})
		return string(out), errs
	}
	if out, errs := gen("SEALED", bare); strings.Contains(out, "transit") || errs != nil {
		t.Errorf("without detection: %q %q", out, errs)
	}
	if out, errs := gen("SEALED", bare, "SECRETS_INIT_JWE_DETECT", "1"); !strings.Contains(out, `path "transit/decrypt/app"`) || errs != nil {
		t.Errorf("with detection: %q %q", out, errs)
	}
	_, errs := gen("BROKEN", "jwe:"+strings.Repeat("A", 40)+".AAAA.AAAA.AAAA.AAAA")
	if len(errs) != 1 || !strings.Contains(errs[0], "BROKEN: jwe:AAAAAAAAAAAAAAAAAAAAAAAAAAAA…: malformed reference") {
		t.Errorf("malformed: %q", errs)
	}
}
