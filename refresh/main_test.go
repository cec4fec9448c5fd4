package refresh

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
)

// azFake is the wire-level Azure fake, one for this test binary: the Azure
// store reaches it as it reaches Key Vault, through HTTPS_PROXY and a CA
// in SSL_CERT_FILE, which Go reads once per process; so TestMain starts it
// and sets them (from scratch) before any test runs. Tests use secret
// names of their own.
var azFake *azurefake.Server

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	f, err := azurefake.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	dir, err := os.MkdirTemp("", "refresh-azure-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, f.CACert, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "SSL_CERT_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") ||
			strings.HasPrefix(k, "IDENTITY_") || strings.HasPrefix(k, "MSI_") || k == "IMDS_ENDPOINT" {
			os.Unsetenv(k)
		}
	}
	for k, v := range map[string]string{
		"SSL_CERT_FILE":       ca,
		"HTTPS_PROXY":         f.ProxyURL,
		"AZURE_TENANT_ID":     azurefake.Tenant,
		"AZURE_CLIENT_ID":     azurefake.ClientID,
		"AZURE_CLIENT_SECRET": azurefake.ClientSecret,
	} {
		os.Setenv(k, v)
	}
	azFake = f
	return m.Run()
}
