package policy

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// FuzzReadYAML: any input is read without a panic, and whatever it holds
// gives the same output twice.
func FuzzReadYAML(f *testing.F) {
	for _, name := range []string{manifests + "/workloads.yaml", manifests + "/compose.yaml", "testdata/jwe/web.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("kind: List\nitems: [{kind: Pod, metadata: {name: x}, spec: {containers: [{env: [{name: A, value: 'vault:x'}]}]}}]"))
	f.Add([]byte("services: {a: {environment: ['A=aws:ssm:x', B]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		uses, err := ReadYAML("in.yaml", data)
		if err != nil {
			return
		}
		req := Request{Uses: uses, Format: "summary", GroupBy: "serviceaccount", Options: Options{
			AWSRegion: "r", AWSAccount: "1", GoogleProject: "p", AzureVaultURL: "https://v.vault.azure.net",
			AzureSubscription: "s", AzureGroup: "g", VaultKV2: []string{"kv"}}}
		for f := range Formats {
			req.Format = f
			a, errA := Generate(req)
			b, errB := Generate(req)
			if !bytes.Equal(a, b) || len(errA) != len(errB) {
				t.Fatalf("%s: two runs differ", f)
			}
		}
	})
}

// FuzzJWEKey: any key URI gives grants or an error, never a panic; a grant
// names no glob, and a Vault grant is on a decrypt path.
func FuzzJWEKey(f *testing.F) {
	for _, k := range []string{"aws-kms://arn:aws:kms:r:1:key/k", "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
		"azure-kv://v.vault.azure.net/keys/k/1", "hcvault://a/b/keys/keys/versions/3", "hcvault://transit/keys//versions/1", "file:x"} {
		f.Add(k)
	}
	o := Options{AzureSubscription: "s", AzureGroup: "g"}
	f.Fuzz(func(t *testing.T, key string) {
		gs, err := o.jweKey(key)
		if err != nil {
			return
		}
		for _, g := range gs {
			if strings.ContainsAny(g.Resource, "*?") || g.Resource == "" {
				t.Fatalf("%q: grant on %q", key, g.Resource)
			}
			if g.Store == storeVault && !strings.Contains(g.Resource, "/decrypt/") {
				t.Fatalf("%q: vault grant on %q", key, g.Resource)
			}
		}
	})
}
