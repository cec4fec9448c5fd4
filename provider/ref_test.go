package provider

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestSignalNeedsFileIsAUsageError(t *testing.T) {
	_, ok, err := Parse("secretfile:/x?refresh=HUP")
	if !ok || !errors.Is(err, ErrSignalNeedsFile) {
		t.Fatalf("Parse = ok %v, err %v; want ErrSignalNeedsFile", ok, err)
	}
}

func TestParse(t *testing.T) {
	const smARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
	tests := []struct {
		in   string
		want Ref
	}{
		// AWS Secrets Manager: ARNs, the ECS valueFrom fields, short forms.
		{smARN, Ref{Target: Target{Kind: SecretsManager, Partition: "aws", Region: "eu-west-1", Name: smARN}}},
		{smARN + ":password", Ref{Target: Target{Kind: SecretsManager, Partition: "aws", Region: "eu-west-1", Name: smARN}, Key: "password"}},
		{smARN + "::AWSPREVIOUS:", Ref{Target: Target{Kind: SecretsManager, Partition: "aws", Region: "eu-west-1", Name: smARN, Stage: "AWSPREVIOUS"}}},
		{smARN + ":user::0a1b2c3d-4e5f", Ref{Target: Target{Kind: SecretsManager, Partition: "aws", Region: "eu-west-1", Name: smARN, Version: "0a1b2c3d-4e5f"}, Key: "user"}},
		{smARN + ":::", Ref{Target: Target{Kind: SecretsManager, Partition: "aws", Region: "eu-west-1", Name: smARN}}},
		{"arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:app/db", Ref{Target: Target{Kind: SecretsManager, Partition: "aws-cn", Region: "cn-north-1", Name: "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:app/db"}}},
		{"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x", Ref{Target: Target{Kind: SecretsManager, Partition: "aws-us-gov", Region: "us-gov-west-1", Name: "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x"}}},
		{"arn:aws-iso-b:secretsmanager:us-isob-east-1:123456789012:secret:x", Ref{Target: Target{Kind: SecretsManager, Partition: "aws-iso-b", Region: "us-isob-east-1", Name: "arn:aws-iso-b:secretsmanager:us-isob-east-1:123456789012:secret:x"}}},
		{"aws:secretsmanager:prod/db", Ref{Target: Target{Kind: SecretsManager, Name: "prod/db"}}},
		{"aws:secretsmanager:prod/db:password:AWSCURRENT", Ref{Target: Target{Kind: SecretsManager, Name: "prod/db", Stage: "AWSCURRENT"}, Key: "password"}},
		{"aws:secretsmanager:tls?file&trim", Ref{Target: Target{Kind: SecretsManager, Name: "tls"}, Opts: Options{File: true, Trim: true}}},

		// AWS SSM Parameter Store.
		{"arn:aws:ssm:us-east-1:123456789012:parameter/app/db/password", Ref{Target: Target{Kind: SSM, Partition: "aws", Region: "us-east-1", Name: "arn:aws:ssm:us-east-1:123456789012:parameter/app/db/password"}}},
		{"arn:aws:ssm:us-east-1:123456789012:parameter/plain:3", Ref{Target: Target{Kind: SSM, Partition: "aws", Region: "us-east-1", Name: "arn:aws:ssm:us-east-1:123456789012:parameter/plain", Version: "3"}}},
		{"aws:ssm:/app/db/password", Ref{Target: Target{Kind: SSM, Name: "/app/db/password"}}},
		{"aws:ssm:plain", Ref{Target: Target{Kind: SSM, Name: "plain"}}},
		{"aws:ssm:/app/db:prod#user", Ref{Target: Target{Kind: SSM, Name: "/app/db", Version: "prod"}, Key: "user"}},

		// Google Secret Manager.
		{"gcp:secretmanager:projects/my-proj/secrets/db", Ref{Target: Target{Kind: Google, Project: "my-proj", Name: "db"}}},
		{"gcp:secretmanager:projects/my-proj/secrets/db/versions/5", Ref{Target: Target{Kind: Google, Project: "my-proj", Name: "db", Version: "5"}}},
		{"gcp:secretmanager:projects/123/locations/europe-west4/secrets/db/versions/latest", Ref{Target: Target{Kind: Google, Project: "123", Location: "europe-west4", Name: "db", Version: "latest"}}},
		{"gcp:secretmanager:db", Ref{Target: Target{Kind: Google, Name: "db"}}},
		{"gcp:secretmanager:db/versions/prod-alias#password", Ref{Target: Target{Kind: Google, Name: "db", Version: "prod-alias"}, Key: "password"}},
		{"gcp:secretmanager:projects/example.com:proj/secrets/tls#cert?file&trim", Ref{Target: Target{Kind: Google, Project: "example.com:proj", Name: "tls"}, Key: "cert", Opts: Options{File: true, Trim: true}}},

		// Vault.
		{"vault:secret/data/app", Ref{Target: Target{Kind: Vault, Name: "secret/data/app"}}},
		{"vault:secret/app#password", Ref{Target: Target{Kind: Vault, Name: "secret/app"}, Key: "password"}},
		{"vault:secret/app#password#2", Ref{Target: Target{Kind: Vault, Name: "secret/app", Version: "2"}, Key: "password"}},
		{"vault:secret/app##3", Ref{Target: Target{Kind: Vault, Name: "secret/app", Version: "3"}}},
		{"vault:/database/creds/app/#username", Ref{Target: Target{Kind: Vault, Name: "database/creds/app"}, Key: "username"}},

		// Azure Key Vault.
		{"azure:keyvault:https://my-vault.vault.azure.net/secrets/db", Ref{Target: Target{Kind: Azure, Vault: "https://my-vault.vault.azure.net", Name: "db"}}},
		{"azure:keyvault:https://My-Vault.vault.azure.cn/secrets/db/0123abcd/", Ref{Target: Target{Kind: Azure, Vault: "https://my-vault.vault.azure.cn", Name: "db", Version: "0123abcd"}}},
		{"azure:keyvault:db/0123abcd#user", Ref{Target: Target{Kind: Azure, Name: "db", Version: "0123abcd"}, Key: "user"}},
		{"@Microsoft.KeyVault(SecretUri=https://v1.vault.usgovcloudapi.net/secrets/db/)", Ref{Target: Target{Kind: Azure, Vault: "https://v1.vault.usgovcloudapi.net", Name: "db"}}},
		{"@Microsoft.KeyVault(VaultName=v1;SecretName=db;SecretVersion=abc123)", Ref{Target: Target{Kind: Azure, Vault: "https://v1.vault.azure.net", Name: "db", Version: "abc123"}}},
		{"@Microsoft.KeyVault(VaultName=v1; SecretName=db)#user?optional", Ref{Target: Target{Kind: Azure, Vault: "https://v1.vault.azure.net", Name: "db"}, Key: "user", Opts: Options{Optional: true}}},

		// Local files.
		{"secretfile:/run/secrets/db", Ref{Target: Target{Kind: File, Name: "/run/secrets/db"}}},
		{"secretfile:relative/db.json#password", Ref{Target: Target{Kind: File, Name: "relative/db.json"}, Key: "password"}},
		{"secretfile:/k.b64?file=/etc/app/keystore.p12&encoding=base64", Ref{Target: Target{Kind: File, Name: "/k.b64"}, Opts: Options{File: true, FilePath: "/etc/app/keystore.p12", Base64: true}}},

		// refresh=.
		{"secretfile:/tls#cert?file&refresh=HUP", Ref{Target: Target{Kind: File, Name: "/tls"}, Key: "cert", Opts: Options{File: true, Refresh: Action{Kind: ActSignal, Signal: syscall.SIGHUP}}}},
		{"secretfile:/tls?file=/x&refresh=SIGUSR1", Ref{Target: Target{Kind: File, Name: "/tls"}, Opts: Options{File: true, FilePath: "/x", Refresh: Action{Kind: ActSignal, Signal: syscall.SIGUSR1}}}},
		{"secretfile:/tls?refresh=15&file", Ref{Target: Target{Kind: File, Name: "/tls"}, Opts: Options{File: true, Refresh: Action{Kind: ActSignal, Signal: syscall.SIGTERM}}}},
		{"secretfile:/tls?file&refresh=40", Ref{Target: Target{Kind: File, Name: "/tls"}, Opts: Options{File: true, Refresh: Action{Kind: ActSignal, Signal: 40}}}},
		{"aws:ssm:/db?refresh=off", Ref{Target: Target{Kind: SSM, Name: "/db"}, Opts: Options{Refresh: Action{Kind: ActOff}}}},
		{"vault:db#k?refresh=none", Ref{Target: Target{Kind: Vault, Name: "db"}, Key: "k", Opts: Options{Refresh: Action{Kind: ActNone}}}},
		{"gcp:secretmanager:s?refresh=restart", Ref{Target: Target{Kind: Google, Name: "s"}, Opts: Options{Refresh: Action{Kind: ActRestart}}}},
	}
	for _, tt := range tests {
		got, ok, err := Parse(tt.in)
		if !ok || err != nil {
			t.Errorf("Parse(%q) = ok %v, err %v", tt.in, ok, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
		again, _, err := Parse(got.String())
		if err != nil || again != got {
			t.Errorf("Parse(%q).String() = %q does not parse back: %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestParseNotReference(t *testing.T) {
	for _, v := range []string{
		"", "plain", "arn:aws:s3:::bucket", "arn:aws:iam::123456789012:role/x", "arn:", "AWS:SSM:x",
		"file:/data/app.db", "sqlite:file:x", "gcp:other:x", " vault:secret/x", "azure:blob:x",
		"https://v.vault.azure.net/secrets/x", "@Microsoft.Storage(x)",
	} {
		if _, ok, err := Parse(v); ok || err != nil {
			t.Errorf("Parse(%q) = ok %v, err %v; want not a reference", v, ok, err)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct{ in, want string }{
		{"arn:aws:secretsmanager:eu-west-1:123456789012:db", "has the form"},
		{"arn:aws:secretsmanager::123456789012:secret:db", "no valid region"},
		{"arn:aws:secretsmanager:eu-west-1:acct:secret:db", "no valid account"},
		{"arn:awsx:secretsmanager:eu-west-1:123456789012:secret:db", "unknown AWS partition"},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:", "empty secret name"},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db:k:AWSCURRENT:id", "not both"},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db:k:s:i:extra", "too many fields"},
		{"aws:secretsmanager:", "empty secret name"},
		{"aws:secretsmanager:bad name", "invalid character"},
		{"arn:aws:ssm:us-east-1:123456789012:db", "has the form"},
		{"arn:aws:ssm:us-east-1:123456789012:parameter/", "empty parameter name"},
		{"aws:ssm:/a:1:2", "too many"},
		{"aws:ssm:", "empty parameter name"},
		{"gcp:secretmanager:", "empty secret id"},
		{"gcp:secretmanager:projects/p", "want projects/"},
		{"gcp:secretmanager:projects/p/secrets/s/versions", "want projects/"},
		{"gcp:secretmanager:projects/p/locations//secrets/s", "want projects/"},
		{"gcp:secretmanager:projects/P!/secrets/s", "invalid project"},
		{"vault:", "invalid Vault path"},
		{"vault:a#b#c#d", "too many '#'"},
		{"vault:a#b#x", "not a positive number"},
		{"azure:keyvault:", "empty secret name"},
		{"azure:keyvault:http://v.vault.azure.net/secrets/x", "invalid character"},
		{"azure:keyvault:https://v.vault.azure.net/keys/x", "not /secrets/"},
		{"azure:keyvault:https://v.vault.azure.net/secrets/x/v/extra", "invalid secret version"},
		{"@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/x", "no closing"},
		{"@Microsoft.KeyVault(VaultName=v)", "wants SecretUri"},
		{"@Microsoft.KeyVault(VaultName=v;SecretName=x;Bogus=1)", "wants SecretUri"},
		{"@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/x)junk", "unexpected text"},
		{"secretfile:", "needs a path"},
		{"secretfile:/x?bogus", "unknown option"},
		{"secretfile:/x?file&file", "given twice"},
		{"secretfile:/x?encoding=hex", "unknown encoding"},
		{"secretfile:/x?trim=1", "takes no value"},
		{"secretfile:/x?file=", "needs a path"},
		{"secretfile:/x?", "empty option"},
		{"secretfile:/x?refresh=HUP", "needs ?file"},
		{"secretfile:/x?refresh", "needs a value"},
		{"secretfile:/x?file&refresh=KILL", "cannot be used"},
		{"secretfile:/x?file&refresh=0", "cannot be used"},
		{"secretfile:/x?file&refresh=NOPE", "unknown signal"},
		{"secretfile:/x?refresh=restart&refresh=off", "given twice"},
	}
	for _, tt := range tests {
		_, ok, err := Parse(tt.in)
		if !ok || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = ok %v, err %v; want an error with %q", tt.in, ok, err, tt.want)
		}
	}
}
