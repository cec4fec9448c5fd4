package policy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Exit codes, as the rest of secrets-init.
const (
	exitUsage    = 2
	exitUnscoped = 125
)

const usage = `Usage:
  secrets-init policy [-f FILE|DIR|-]... [--env-file FILE]... [--format F] [FLAGS]

Writes the least-privilege grants that the secret references in Kubernetes
manifests (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
List), docker compose files and dotenv files need; a jwe: reference needs
decrypting with its key (kms:Decrypt, roles/cloudkms.cryptoKeyDecrypter, an
Azure key role, update on MOUNT/decrypt/NAME). Offline; the output is sorted
and de-duplicated.

Formats: aws, aws-terraform, vault, vault-terraform, gcp, gcp-terraform,
azure, azure-terraform, summary.

Exit status: 0, 2 for a usage error, 125 when a reference cannot be scoped
(one line each on stderr, naming the flag that would scope it).

Flags:
`

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// Main runs `secrets-init policy ARGS`.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		files, envFiles, kv2, kms list
		req                       Request
		help                      bool
	)
	fs := flag.NewFlagSet("secrets-init policy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&files, "f", "read `FILE`, every manifest of a directory, or - for stdin (repeatable)")
	fs.Var(&envFiles, "env-file", "read a dotenv `FILE` (repeatable)")
	fs.StringVar(&req.Format, "format", "summary", "output `FORMAT`: "+strings.Join(formatNames(), ", "))
	fs.StringVar(&req.GroupBy, "group-by", "serviceaccount", "one policy per `G`: serviceaccount, workload or none")
	fs.StringVar(&req.Group, "group", "", "only the group `NAME` (e.g. serviceaccount/prod/web); aws and vault then print a bare policy")
	fs.StringVar(&req.AWSRegion, "aws-region", "", "`REGION` of short aws:secretsmanager: and aws:ssm: references")
	fs.StringVar(&req.AWSAccount, "aws-account", "", "`ACCOUNT` id of short AWS references")
	fs.StringVar(&req.AWSPartition, "aws-partition", "aws", "`PARTITION` of short AWS references")
	fs.Var(&kms, "kms-key", "grant kms:Decrypt on the AWS KMS key `ARN` that encrypts the secrets or parameters (repeatable; jwe: keys are granted without it)")
	fs.BoolVar(&req.NoBatch, "no-batch", false, "do not grant secretsmanager:BatchGetSecretValue")
	fs.StringVar(&req.GoogleProject, "google-project", "", "`PROJECT` of short gcp:secretmanager: references")
	fs.StringVar(&req.AzureVaultURL, "azure-key-vault-url", "", "key vault `URL` of short azure:keyvault: references (as AZURE_KEY_VAULT_URL)")
	fs.StringVar(&req.AzureSubscription, "azure-subscription", "", "subscription `ID` of the key vaults")
	fs.StringVar(&req.AzureGroup, "azure-resource-group", "", "resource `GROUP` of the key vaults")
	fs.Var(&kv2, "vault-kv2", "`MOUNT` is a KV v2 engine: grant MOUNT/data/PATH (repeatable)")
	fs.BoolVar(&req.Refresh, "refresh", false, "also grant what --refresh needs (DescribeSecret, KV v2 metadata, Vault's sys/leases/renew and revoke)")
	fs.BoolVar(&help, "help", false, "print this help")
	fs.BoolVar(&help, "h", false, "print this help")

	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "secrets-init policy: "+format+"\n", a...)
		fmt.Fprintf(stderr, "Run 'secrets-init policy --help' for usage.\n")
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help = true
		} else {
			return fail("%v", err)
		}
	}
	if help {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q (inputs are given with -f)", fs.Arg(0))
	}
	if _, ok := Formats[req.Format]; !ok {
		return fail("--format %q: want one of %s", req.Format, strings.Join(formatNames(), ", "))
	}
	if !slices.Contains(GroupBys, req.GroupBy) {
		return fail("--group-by %q: want serviceaccount, workload or none", req.GroupBy)
	}
	if len(files) == 0 && len(envFiles) == 0 {
		return fail("no input: give -f FILE, -f DIR, -f - or --env-file FILE")
	}
	if n := len(files) - len(slices.DeleteFunc(slices.Clone(files), func(f string) bool { return f == "-" })); n > 1 {
		return fail("-f - is given twice")
	}
	for _, k := range kms {
		f := strings.SplitN(k, ":", 6)
		if len(f) != 6 || f[0] != "arn" || f[2] != "kms" || f[3] == "" || f[4] == "" || !strings.HasPrefix(f[5], "key/") || strings.ContainsAny(k, "*?") {
			return fail("--kms-key %q: want a key ARN, arn:PARTITION:kms:REGION:ACCOUNT:key/ID", k)
		}
	}
	if p := req.AWSPartition; p != "aws" && !strings.HasPrefix(p, "aws-") {
		return fail("--aws-partition %q: want aws, aws-cn, aws-us-gov, …", p)
	}
	if u := req.AzureVaultURL; u != "" {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" || strings.Trim(p.Path, "/") != "" {
			return fail("--azure-key-vault-url %q: want https://NAME.vault.azure.net", u)
		}
	}
	req.KMSKeys, req.VaultKV2 = kms, kv2

	uses, err := ReadPaths(files, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "secrets-init policy: %v\n", err)
		return exitUsage
	}
	for _, f := range envFiles {
		u, err := ReadDotenv(f)
		if err != nil {
			fmt.Fprintf(stderr, "secrets-init policy: --env-file %v\n", err)
			return exitUsage
		}
		uses = append(uses, u...)
	}
	req.Uses = uses
	out, errs := Generate(req)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(stderr, "secrets-init policy: %s\n", e)
		}
		return exitUnscoped
	}
	stdout.Write(out)
	return 0
}

func formatNames() []string {
	var out []string
	for f := range Formats {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
