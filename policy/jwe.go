package policy

import (
	"net/url"
	"strconv"
	"strings"
)

// The grants of jwe: references (SPEC §9): only the wrapped content key
// goes to the KMS, so the workload needs the one permission that unwraps
// it, on the one key. The key URIs are read with the rules of the KMSes
// that use them (provider/aws, gcp, azure, vault), which this package
// cannot import: they link the SDKs.

// azureKeyRole is the narrowest built-in role that may unwrapKey: its data
// actions are keys/read, keys/wrap/action and keys/unwrap/action ("Key
// Vault Crypto User" adds decrypt, sign, encrypt, update and backup).
const azureKeyRole = "Key Vault Crypto Service Encryption User"

// jweKey is what decrypting with the key keyURI needs.
func (o *Options) jweKey(keyURI string) ([]grant, error) {
	if keyStore(keyURI) != "" && strings.ContainsAny(keyURI, "*?") {
		// A glob in IAM and Vault policies, and in no key's name.
		return nil, scopeError{"the key " + keyURI + " holds '*' or '?', which a policy would read as a glob"}
	}
	switch keyStore(keyURI) {
	case storeAWS:
		arn := strings.TrimPrefix(keyURI, "aws-kms://")
		f := strings.SplitN(arn, ":", 6)
		if len(f) != 6 || f[0] != "arn" || !strings.HasPrefix(f[1], "aws") || f[2] != "kms" || f[3] == "" || f[4] == "" ||
			!(strings.HasPrefix(f[5], "key/") || strings.HasPrefix(f[5], "alias/")) {
			return nil, badKey(keyURI, "aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID")
		}
		if strings.HasPrefix(f[5], "alias/") {
			// IAM authorises kms:Decrypt on the key's ARN, never on an
			// alias's; the alias's key is not in the manifests.
			return nil, scopeError{"the key " + keyURI + " is an alias, and kms:Decrypt is granted on a key ARN only: encrypt to aws-kms://arn:…:key/ID"}
		}
		return []grant{{Store: storeAWS, Action: "kms:Decrypt", Resource: arn}}, nil

	case storeGCP:
		name := strings.TrimPrefix(keyURI, "gcp-kms://")
		f := strings.Split(name, "/")
		if len(f) != 10 || f[0] != "projects" || f[2] != "locations" || f[4] != "keyRings" || f[6] != "cryptoKeys" || f[8] != "cryptoKeyVersions" ||
			strings.Contains(name, "//") || strings.HasSuffix(name, "/") {
			return nil, badKey(keyURI, "gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N")
		}
		// A role is bound on the crypto key (IAM has no policy per
		// version); it covers its versions.
		return []grant{{Store: storeGCP, Action: "roles/cloudkms.cryptoKeyDecrypter", Resource: strings.Join(f[:8], "/"),
			Project: f[1], Location: f[3], KeyRing: f[5], CryptoKey: f[7]}}, nil

	case storeAzure:
		u, err := url.Parse("https://" + strings.TrimPrefix(keyURI, "azure-kv://"))
		var parts []string
		if err == nil {
			parts = strings.Split(strings.TrimPrefix(u.Path, "/keys/"), "/")
		}
		if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/keys/") ||
			len(parts) > 2 || !azureName(parts[0]) || len(parts) == 2 && !azureName(parts[1]) {
			return nil, badKey(keyURI, "azure-kv://VAULT.vault.azure.net/keys/NAME/VERSION")
		}
		host := strings.ToLower(u.Hostname())
		if strings.Contains(host, ".managedhsm.") {
			return nil, scopeError{"the key " + keyURI + " is in a Managed HSM, whose roles are assigned with its local RBAC (az keyvault role assignment create --hsm-name), not here"}
		}
		if err := o.azureGroup(nil); err != nil {
			return nil, err
		}
		vault, _, _ := strings.Cut(host, ".")
		if !azureName(vault) {
			return nil, badKey(keyURI, "azure-kv://VAULT.vault.azure.net/keys/NAME/VERSION")
		}
		// A role is assigned on the key (all its versions).
		return []grant{{Store: storeAzure, Action: azureKeyRole, Resource: o.azureVault(vault) + "/keys/" + parts[0]}}, nil

	case storeVault:
		mount, name, ok := transitKey(strings.TrimPrefix(keyURI, "hcvault://"))
		if !ok {
			return nil, badKey(keyURI, "hcvault://MOUNT/keys/NAME/versions/N")
		}
		for _, seg := range strings.Split(mount+"/"+name, "/") {
			if seg == "+" {
				return nil, scopeError{"the key " + keyURI + " has a '+' segment, a glob in a Vault policy"}
			}
		}
		return []grant{{Store: storeVault, Action: "update", Resource: mount + "/decrypt/" + name}}, nil
	}
	return nil, nil // file: a local key
}

func badKey(keyURI, want string) error {
	return scopeError{"the key " + keyURI + " is not a key URI of its scheme (want " + want + ")"}
}

func azureName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
}

// transitKey reads MOUNT/keys/NAME/versions/N from its end, as the Vault
// KMS does (a mount may have several segments); the version is required,
// as it is to decrypt.
func transitKey(p string) (mount, name string, ok bool) {
	i := strings.LastIndex(p, "/versions/")
	if i < 0 {
		return "", "", false
	}
	v := p[i+len("/versions/"):]
	if n, err := strconv.Atoi(v); err != nil || n < 1 || strconv.Itoa(n) != v {
		return "", "", false
	}
	p = p[:i]
	j := strings.LastIndex(p, "/")
	if j < 0 {
		return "", "", false
	}
	mount, ok = strings.CutSuffix(p[:j], "/keys")
	name = p[j+1:]
	if !ok || mount == "" || name == "" || strings.HasPrefix(mount, "/") || strings.Contains(mount, "//") || strings.ContainsAny(p, "?#") {
		return "", "", false
	}
	return mount, name, true
}
