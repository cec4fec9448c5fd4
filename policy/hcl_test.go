package policy

// The Terraform and Vault outputs are parsed with HCL's own parser, and
// what they grant is read back and compared with the JSON output and the
// grants. hcl/v2 is imported by this test only: it is not linked into
// secrets-init (TestNotLinked).

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// parseHCL parses src and fails the test on any diagnostic.
func parseHCL(t *testing.T, name, src string) *hclsyntax.Body {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), name, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s does not parse: %v\n%s", name, diags, src)
	}
	return f.Body.(*hclsyntax.Body)
}

// strings of an attribute evaluated with the variables vars.
func attr(t *testing.T, b *hclsyntax.Body, name string, vars map[string]cty.Value) cty.Value {
	t.Helper()
	a, ok := b.Attributes[name]
	if !ok {
		t.Fatalf("no attribute %s", name)
	}
	v, diags := a.Expr.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", name, diags)
	}
	return v
}

func stringList(v cty.Value) []string {
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, e.AsString())
	}
	return out
}

func generate(t *testing.T, format string, extra ...string) string {
	t.Helper()
	out, stderr, code := run(t, "", append(append([]string{"-f", manifests, "--format", format, "--refresh",
		"--kms-key", "arn:aws:kms:eu-west-1:111122223333:key/k-1"}, flags...), extra...)...)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", format, code, stderr)
	}
	return out
}

// TestAWSTerraform: every aws_iam_policy_document holds the statements of
// the aws format's document for its group.
func TestAWSTerraform(t *testing.T) {
	var docs map[string]awsDocument
	if err := json.Unmarshal([]byte(generate(t, "aws")), &docs); err != nil {
		t.Fatal(err)
	}
	body := parseHCL(t, "aws.tf", generate(t, "aws-terraform"))
	labels := labeler(slices.Collect(mapKeys(docs)), tfLabel)
	if len(body.Blocks) != len(docs) {
		t.Fatalf("%d blocks, want %d", len(body.Blocks), len(docs))
	}
	for group, doc := range docs {
		var blk *hclsyntax.Block
		for _, b := range body.Blocks {
			if b.Type == "data" && slices.Equal(b.Labels, []string{"aws_iam_policy_document", labels[group]}) {
				blk = b
			}
		}
		if blk == nil {
			t.Fatalf("no data block for %s", group)
		}
		var got []awsStatement
		for _, st := range blk.Body.Blocks {
			if st.Type != "statement" {
				t.Fatalf("block %s in %s", st.Type, group)
			}
			got = append(got, awsStatement{
				Sid:      attr(t, st.Body, "sid", nil).AsString(),
				Effect:   attr(t, st.Body, "effect", nil).AsString(),
				Action:   stringList(attr(t, st.Body, "actions", nil)),
				Resource: stringList(attr(t, st.Body, "resources", nil)),
			})
		}
		if !slices.EqualFunc(got, doc.Statement, func(a, b awsStatement) bool {
			return a.Sid == b.Sid && a.Effect == b.Effect && slices.Equal(a.Action, b.Action) && slices.Equal(a.Resource, b.Resource)
		}) {
			t.Errorf("%s: terraform %+v, json %+v", group, got, doc.Statement)
		}
	}
}

// TestVaultTerraform: each vault_policy's policy is the vault format's
// policy of its group, and that policy itself parses.
func TestVaultTerraform(t *testing.T) {
	body := parseHCL(t, "vault.tf", generate(t, "vault-terraform"))
	groups := []string{"compose/api", "compose/worker", "serviceaccount/batch/reporter", "serviceaccount/prod/web"}
	if len(body.Blocks) != len(groups) {
		t.Fatalf("%d blocks, want %d", len(body.Blocks), len(groups))
	}
	for i, g := range groups {
		b := body.Blocks[i]
		if b.Type != "resource" || b.Labels[0] != "vault_policy" || b.Labels[1] != tfLabel(g) {
			t.Errorf("block %d: %s %q", i, b.Type, b.Labels)
		}
		if name := attr(t, b.Body, "name", nil).AsString(); name != vaultPolicyName(g) {
			t.Errorf("name %q, want %q", name, vaultPolicyName(g))
		}
		pol := attr(t, b.Body, "policy", nil).AsString()
		bare := generate(t, "vault", "--group", g)
		if want := strings.SplitN(bare, "\n\n", 2)[1]; pol != want {
			t.Errorf("%s: policy\n%s\nwant\n%s", g, pol, want)
		}
		vb := parseHCL(t, "policy.hcl", pol)
		for _, p := range vb.Blocks {
			if p.Type != "path" || len(p.Labels) != 1 {
				t.Errorf("%s: block %s %q", g, p.Type, p.Labels)
			}
			want := []string{"read"}
			if strings.HasPrefix(p.Labels[0], "sys/leases/") { // --refresh's lease management
				want = []string{"update"}
			}
			if c := stringList(attr(t, p.Body, "capabilities", nil)); !slices.Equal(c, want) {
				t.Errorf("%s %s: capabilities %q", g, p.Labels, c)
			}
		}
	}
}

func TestGCPTerraform(t *testing.T) {
	body := parseHCL(t, "gcp.tf", generate(t, "gcp-terraform"))
	vars := map[string]cty.Value{}
	for _, b := range body.Blocks {
		if b.Type == "variable" {
			vars[b.Labels[0]] = cty.StringVal("member-of-" + b.Labels[0])
		}
	}
	var got []string
	for _, b := range body.Blocks {
		if b.Type != "resource" {
			continue
		}
		s := b.Labels[0] + " " + attr(t, b.Body, "project", vars).AsString()
		if _, ok := b.Body.Attributes["location"]; ok {
			s += "/" + attr(t, b.Body, "location", vars).AsString()
		}
		s += " " + attr(t, b.Body, "secret_id", vars).AsString() + " " + attr(t, b.Body, "role", vars).AsString() + " " + attr(t, b.Body, "member", vars).AsString()
		got = append(got, s)
	}
	want := []string{
		"google_secret_manager_secret_iam_member dev-project short-secret roles/secretmanager.secretAccessor member-of-member_dotenv_testdata_manifests_app_env",
		"google_secret_manager_secret_iam_member ops-project agent-key roles/secretmanager.secretAccessor member-of-member_serviceaccount_ops_default",
		"google_secret_manager_regional_secret_iam_member ops-project/europe-west1 legacy-cert roles/secretmanager.secretAccessor member-of-member_serviceaccount_ops_legacy",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAzureTerraform(t *testing.T) {
	body := parseHCL(t, "azure.tf", generate(t, "azure-terraform"))
	vars := map[string]cty.Value{}
	for _, b := range body.Blocks {
		if b.Type == "variable" {
			vars[b.Labels[0]] = cty.StringVal(b.Labels[0])
		}
	}
	var got []string
	for _, b := range body.Blocks {
		if b.Type == "resource" {
			got = append(got, attr(t, b.Body, "principal_id", vars).AsString()+" "+attr(t, b.Body, "role_definition_name", vars).AsString()+" "+attr(t, b.Body, "scope", vars).AsString())
		}
	}
	const rg = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/secrets/providers/Microsoft.KeyVault/vaults/"
	want := []string{
		"principal_id_dotenv_testdata_manifests_app_env Key Vault Secrets User " + rg + "dev-vault/secrets/short-name",
		"principal_id_serviceaccount_batch_reporter Key Vault Secrets User " + rg + "reports/secrets/api-key",
		"principal_id_serviceaccount_default_default Key Vault Secrets User " + rg + "ops-vault/secrets/debug-token",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestJWETerraform: the grants of jwe: keys in every Terraform format
// parse, and name exactly the keys (testdata/jwe/web.yaml: an AWS key by
// kid, a Cloud KMS key by ?key=, a Key Vault key by kid, a transit key by
// the workload's SECRETS_INIT_JWE_KEY, and a file: key, which grants
// nothing).
func TestJWETerraform(t *testing.T) {
	gen := func(format string) *hclsyntax.Body {
		t.Helper()
		out, stderr, code := run(t, "", "-f", "testdata/jwe/web.yaml", "--format", format,
			"--aws-region", "eu-west-1", "--aws-account", "111122223333", "--azure-subscription", "sub", "--azure-resource-group", "rg")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, stderr)
		}
		return parseHCL(t, format+".tf", out)
	}
	vars := map[string]cty.Value{"member_serviceaccount_prod_web": cty.StringVal("M"), "principal_id_serviceaccount_prod_web": cty.StringVal("P")}
	var got []string
	for _, b := range gen("aws-terraform").Blocks {
		for _, st := range b.Body.Blocks {
			got = append(got, b.Labels[0]+" "+strings.Join(stringList(attr(t, st.Body, "actions", nil)), ",")+" "+strings.Join(stringList(attr(t, st.Body, "resources", nil)), ","))
		}
	}
	for _, b := range gen("gcp-terraform").Blocks {
		if b.Type == "resource" {
			got = append(got, b.Labels[0]+" "+attr(t, b.Body, "crypto_key_id", vars).AsString()+" "+attr(t, b.Body, "role", vars).AsString()+" "+attr(t, b.Body, "member", vars).AsString())
		}
	}
	for _, b := range gen("azure-terraform").Blocks {
		if b.Type == "resource" {
			got = append(got, b.Labels[0]+" "+attr(t, b.Body, "scope", vars).AsString()+" "+attr(t, b.Body, "role_definition_name", vars).AsString()+" "+attr(t, b.Body, "principal_id", vars).AsString())
		}
	}
	for _, b := range gen("vault-terraform").Blocks {
		for _, p := range parseHCL(t, "policy.hcl", attr(t, b.Body, "policy", nil).AsString()).Blocks {
			got = append(got, "vault "+p.Labels[0]+" "+strings.Join(stringList(attr(t, p.Body, "capabilities", nil)), ","))
		}
	}
	want := []string{
		"aws_iam_policy_document kms:Decrypt arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"aws_iam_policy_document secretsmanager:BatchGetSecretValue *",
		"aws_iam_policy_document secretsmanager:GetSecretValue arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-??????",
		"google_kms_crypto_key_iam_member projects/shop/locations/europe-west1/keyRings/ring/cryptoKeys/app roles/cloudkms.cryptoKeyDecrypter M",
		"azurerm_role_assignment /subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/shop-kv/keys/app Key Vault Crypto Service Encryption User P",
		"vault transit/decrypt/app update",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestShellSyntax: the gcp and azure scripts are valid sh (sh -n), and
// refuse to run without their members.
func TestShellSyntax(t *testing.T) {
	for _, f := range []string{"gcp", "azure"} {
		script := generate(t, f)
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", f, err, out)
		}
		cmd = exec.Command("sh")
		cmd.Env = []string{"PATH=/nonexistent"}
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "to the ") {
			t.Errorf("%s: ran without members: %v\n%s", f, err, out)
		}
	}
}

// TestNotLinked: the YAML library is in the secrets-init binary, HCL is not.
func TestNotLinked(t *testing.T) {
	if testing.Short() {
		t.Skip("builds secrets-init")
	}
	bin := t.TempDir() + "/secrets-init"
	build := exec.Command("go", "build", "-tags", "grpcnotrace", "-o", bin, "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "go.yaml.in/yaml/v3") {
		t.Errorf("go.yaml.in/yaml/v3 is not in the binary:\n%s", out)
	}
	for _, m := range []string{"hashicorp/hcl/v2", "zclconf/go-cty", "k8s.io/"} {
		if strings.Contains(string(out), m) {
			t.Errorf("%s is in the binary", m)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
