package policy

import (
	"bytes"
	"os"
	"testing"
)

// FuzzReadYAML: any input is read without a panic, and whatever it holds
// gives the same output twice.
func FuzzReadYAML(f *testing.F) {
	for _, name := range []string{"workloads.yaml", "compose.yaml"} {
		data, err := os.ReadFile(manifests + "/" + name)
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
