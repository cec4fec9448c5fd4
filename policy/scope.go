// Package policy writes the least-privilege grants that the secret
// references of some manifests need: IAM policies, Vault policies, Google
// and Azure role bindings, as JSON, HCL, Terraform or shell commands. It
// reads Kubernetes manifests, docker compose files and dotenv files,
// offline, and its output is deterministic.
//
// References are parsed by provider.Parse only; this package maps each
// parsed Target to the resources a store's access control names.
package policy

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/secrets-init/secrets-init/provider"
)

// Options are what the manifests do not say.
type Options struct {
	AWSRegion, AWSAccount, AWSPartition string
	GoogleProject                       string
	AzureSubscription, AzureGroup       string
	AzureVaultURL                       string
	VaultKV2                            []string // KV v2 mount paths
	KMSKeys                             []string // AWS KMS key ARNs for kms:Decrypt
	NoBatch                             bool
	Refresh                             bool
}

// A store names the access control system that a grant belongs to.
type store string

const (
	storeAWS   store = "aws"
	storeVault store = "vault"
	storeGCP   store = "gcp"
	storeAzure store = "azure"
)

// A grant is one permission on one resource.
type grant struct {
	Store store
	// Action is, for AWS, the IAM action; for Vault, the capability; for
	// Google, the role; for Azure, the role's name.
	Action string
	// Resource is, for AWS, the ARN; for Vault, the policy path; for
	// Google, the secret's full name (projects/P[/locations/L]/secrets/S);
	// for Azure, the scope.
	Resource string
	// Google: the parts of Resource; a Cloud KMS key has KeyRing and
	// CryptoKey, a secret Secret.
	Project, Location, Secret string
	KeyRing, CryptoKey        string
}

// A scopeError is a reference whose grants cannot be written: it says what
// is missing and which flag gives it.
type scopeError struct{ msg string }

func (e scopeError) Error() string { return e.msg }

// missing is the error of a reference that lacks some parts: pairs of a
// part and the flag that gives it, for the parts not given.
func missing(pairs ...string) error {
	var what, flags []string
	for i := 0; i < len(pairs); i += 2 {
		what, flags = append(what, "the "+pairs[i]), append(flags, pairs[i+1])
	}
	return scopeError{fmt.Sprintf("the reference does not name %s: give %s", and(what), and(flags))}
}

// and joins words as a list in English: "a", "a and b", "a, b and c".
func and(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// storeOf is the access control system that reads a kind of reference
// ("" for references that need no grant).
func storeOf(k provider.Kind) store {
	switch k {
	case provider.SecretsManager, provider.SSM:
		return storeAWS
	case provider.Vault:
		return storeVault
	case provider.Google:
		return storeGCP
	case provider.Azure:
		return storeAzure
	}
	// provider.File reads a local file: nothing to grant. provider.JWE's
	// store is its key's (keyStore).
	return ""
}

// keyStore is the access control system of a jwe: key ("" for file:
// keys, which need no grant).
func keyStore(keyURI string) store {
	switch {
	case strings.HasPrefix(keyURI, "aws-kms://"):
		return storeAWS
	case strings.HasPrefix(keyURI, "gcp-kms://"):
		return storeGCP
	case strings.HasPrefix(keyURI, "azure-kv://"):
		return storeAzure
	case strings.HasPrefix(keyURI, "hcvault://"):
		return storeVault
	}
	return ""
}

// grants are the permissions that reading ref needs, with c (the
// workload's own variables) filling in what the reference leaves out, then
// the flags. keyURI is the key of a jwe: reference.
func (o Options) grants(ref provider.Ref, keyURI string, c Context) ([]grant, error) {
	if c.AWSRegion != "" {
		o.AWSRegion = c.AWSRegion
	}
	if c.GoogleProject != "" {
		o.GoogleProject = c.GoogleProject
	}
	if c.AzureVaultURL != "" {
		o.AzureVaultURL = c.AzureVaultURL
	}
	switch ref.Kind {
	case provider.SecretsManager:
		return o.secretsManager(ref)
	case provider.SSM:
		return o.ssm(ref)
	case provider.Vault:
		return o.vault(ref)
	case provider.Google:
		return o.google(ref)
	case provider.Azure:
		return o.azure(ref)
	case provider.JWE:
		return o.jweKey(keyURI)
	}
	return nil, nil
}

// awsHead is the partition, region and account of an ARN for a short
// reference.
func (o *Options) awsHead() (partition, region, account string, err error) {
	var lack []string
	if o.AWSRegion == "" {
		lack = append(lack, "AWS region", "--aws-region")
	}
	if o.AWSAccount == "" {
		lack = append(lack, "AWS account", "--aws-account")
	}
	if lack != nil {
		return "", "", "", missing(lack...)
	}
	partition = o.AWSPartition
	if partition == "" {
		partition = "aws"
	}
	return partition, o.AWSRegion, o.AWSAccount, nil
}

// suffixed matches a Secrets Manager ARN that ends with the secret's random
// suffix: AWS reads an ARN whose name ends with '-' and six characters as
// a complete ARN, and so does this.
var suffixed = regexp.MustCompile(`-[A-Za-z0-9]{6}$`)

func (o *Options) secretsManager(ref provider.Ref) ([]grant, error) {
	var arn string
	if ref.Partition != "" {
		arn = ref.Name
		if !suffixed.MatchString(arn) {
			arn += "-??????"
		}
	} else {
		p, r, a, err := o.awsHead()
		if err != nil {
			return nil, err
		}
		arn = fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-??????", p, r, a, ref.Name)
	}
	gs := []grant{{Store: storeAWS, Action: "secretsmanager:GetSecretValue", Resource: arn}}
	if o.Refresh {
		gs = append(gs, grant{Store: storeAWS, Action: "secretsmanager:DescribeSecret", Resource: arn})
	}
	return gs, nil
}

func (o *Options) ssm(ref provider.Ref) ([]grant, error) {
	var arn string
	if ref.Partition != "" {
		// arn:P:ssm:R:A:parameter/NAME: the parameter /app/x and the
		// parameter app/x both have the ARN …:parameter/app/x.
		head, name, _ := strings.Cut(ref.Name, ":parameter/")
		arn = head + ":parameter/" + strings.TrimLeft(name, "/")
	} else {
		p, r, a, err := o.awsHead()
		if err != nil {
			return nil, err
		}
		arn = fmt.Sprintf("arn:%s:ssm:%s:%s:parameter/%s", p, r, a, strings.TrimLeft(ref.Name, "/"))
	}
	// The engine reads with GetParameters (batches of ten); GetParameter
	// is granted for the tools people run by hand with the same identity.
	return []grant{
		{Store: storeAWS, Action: "ssm:GetParameter", Resource: arn},
		{Store: storeAWS, Action: "ssm:GetParameters", Resource: arn},
	}, nil
}

// vault maps a path to its policy path: under a KV v2 mount given with
// --vault-kv2, MOUNT/data/REST (a path already written with data/ stays
// as it is) and, with --refresh, MOUNT/metadata/REST for the version
// check; any other path as written. A write (>>vault:) needs "create" and
// "update" on its path as written.
func (o *Options) vault(ref provider.Ref) ([]grant, error) {
	p := ref.Name
	for _, seg := range strings.Split(p, "/") {
		if seg == "+" || strings.Contains(seg, "*") {
			return nil, scopeError{"a Vault path with '*' or a '+' segment is a glob in a policy and cannot be granted exactly"}
		}
	}
	if ref.IsWrite() {
		// A write (>>vault:) goes to its path as written, whatever the
		// mount: Vault asks "update" of it, or "create" where nothing
		// exists there yet (paths with an existence check).
		gs := []grant{{Store: storeVault, Action: "create", Resource: p}, {Store: storeVault, Action: "update", Resource: p}}
		return append(gs, o.leaseGrants()...), nil
	}
	mount, rest := "", ""
	for _, m := range o.VaultKV2 {
		m = strings.Trim(m, "/")
		if r, ok := strings.CutPrefix(p, m+"/"); ok && len(m) > len(mount) {
			mount, rest = m, r
		}
	}
	if mount == "" {
		return append([]grant{{Store: storeVault, Action: "read", Resource: p}}, o.leaseGrants()...), nil
	}
	rest = strings.TrimPrefix(rest, "data/")
	gs := []grant{{Store: storeVault, Action: "read", Resource: mount + "/data/" + rest}}
	if o.Refresh {
		gs = append(gs, grant{Store: storeVault, Action: "read", Resource: mount + "/metadata/" + rest})
	}
	return gs, nil
}

// leaseGrants are what --refresh's lease management needs for a Vault
// path that may be dynamic: offline, only a path under a --vault-kv2
// mount is known to come without a lease (a database/creds/ROLE, a KV v1
// path and a write's answer may all carry one). secrets-init renews a
// lease at sys/leases/renew and revokes the one a re-read superseded at
// sys/leases/revoke, both with the "update" capability on the path itself
// (the lease id is in the body). Vault's default policy already grants
// sys/leases/renew (and the token's own auth/token/lookup-self and
// renew-self), but not sys/leases/revoke; renew is granted here too, for
// tokens made without the default policy.
func (o *Options) leaseGrants() []grant {
	if !o.Refresh {
		return nil
	}
	return []grant{
		{Store: storeVault, Action: "update", Resource: "sys/leases/renew"},
		{Store: storeVault, Action: "update", Resource: "sys/leases/revoke"},
	}
}

func (o *Options) google(ref provider.Ref) ([]grant, error) {
	project := ref.Project
	if project == "" {
		if o.GoogleProject == "" {
			return nil, missing("Google Cloud project", "--google-project")
		}
		project = o.GoogleProject
	}
	name := "projects/" + project + "/secrets/" + ref.Name
	if ref.Location != "" {
		name = "projects/" + project + "/locations/" + ref.Location + "/secrets/" + ref.Name
	}
	return []grant{{Store: storeGCP, Action: "roles/secretmanager.secretAccessor", Resource: name,
		Project: project, Location: ref.Location, Secret: ref.Name}}, nil
}

func (o *Options) azure(ref provider.Ref) ([]grant, error) {
	// A role assignment's scope is an Azure resource id, which names the
	// vault's subscription and resource group; a reference holds neither.
	var lack []string
	vault := ref.Vault
	if vault == "" {
		vault = o.AzureVaultURL
	}
	if vault == "" {
		lack = append(lack, "key vault", "--azure-key-vault-url")
	}
	if err := o.azureGroup(lack); err != nil {
		return nil, err
	}
	u, err := url.Parse(vault)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, scopeError{"AZURE_KEY_VAULT_URL is not a key vault URL (want https://NAME.vault.azure.net)"}
	}
	name, _, _ := strings.Cut(strings.ToLower(u.Hostname()), ".")
	return []grant{{Store: storeAzure, Action: "Key Vault Secrets User", Resource: o.azureVault(name) + "/secrets/" + ref.Name}}, nil
}

// azureVault is the resource id of a key vault in the flags' subscription
// and resource group.
func (o *Options) azureVault(name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s", o.AzureSubscription, o.AzureGroup, name)
}

// azureGroup is the error of a missing subscription or resource group,
// after the missing parts lack already holds.
func (o *Options) azureGroup(lack []string) error {
	if o.AzureSubscription == "" {
		lack = append(lack, "vault's subscription", "--azure-subscription")
	}
	if o.AzureGroup == "" {
		lack = append(lack, "vault's resource group", "--azure-resource-group")
	}
	if lack != nil {
		return missing(lack...)
	}
	return nil
}
