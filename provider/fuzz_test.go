package provider

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that what it accepts
// round-trips through String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf::AWSPREVIOUS:",
		"arn:aws-cn:ssm:cn-north-1:123456789012:parameter/a/b:3#k?file",
		"aws:secretsmanager:db:password", "aws:ssm:/app/db#user?optional&trim",
		"gcp:secretmanager:projects/p/locations/l/secrets/s/versions/2#k?file=/x&encoding=base64",
		"gcp:secretmanager:s", "vault:secret/app#k#2", "vault:db/creds/app#username",
		"azure:keyvault:https://v.vault.azure.net/secrets/n/v#k", "azure:keyvault:n/v",
		"@Microsoft.KeyVault(VaultName=v;SecretName=n;SecretVersion=x)#k?optional",
		"@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/n/)",
		"secretfile:/run/secrets/x#k?file", "plain", "arn:aws:s3:::b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok, err := Parse(s)
		if !ok || err != nil {
			return
		}
		canon := r.String()
		again, ok, err := Parse(canon)
		if !ok || err != nil || again != r {
			t.Fatalf("Parse(%q) = %+v; String %q parses to %+v, %v, %v", s, r, canon, again, ok, err)
		}
		if again.String() != canon {
			t.Fatalf("String is not stable: %q then %q", canon, again.String())
		}
	})
}

// FuzzParseEnvFile checks that the dotenv parser never panics, returns
// only NAME=VALUE entries with valid names, and reads back what it wrote
// in double quotes.
func FuzzParseEnvFile(f *testing.F) {
	for _, s := range []string{
		"A=1\nexport B='two words'\n# comment\nC=\"multi\nline\" # note\nD=x #y\n",
		"E=\"esc \\\"q\\\" \\n \\\\ \\$\"\r\nF=a=b=c\n", "\ufeffG=bom", "bad line\n", "H='unterminated",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseEnvFile(strings.NewReader(s))
		if err != nil {
			return
		}
		var out bytes.Buffer
		for _, kv := range env {
			name, value, ok := strings.Cut(kv, "=")
			if !ok || !validName(name) {
				t.Fatalf("entry %q has no valid name", kv)
			}
			r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", `\r`)
			out.WriteString(name + "=\"" + r.Replace(value) + "\"\n")
		}
		again, err := ParseEnvFile(&out)
		if err != nil {
			t.Fatalf("written back %q: %v", out.String(), err)
		}
		if strings.Join(again, "\x00") != strings.Join(env, "\x00") {
			t.Fatalf("round trip: %q became %q", env, again)
		}
	})
}

// FuzzMembers checks the JSON member reader never panics and agrees with
// isJSONObject.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{"a":"b","c":{"d":[1,2]}}`, `{}`, `[1]`, `"s"`, `{"a":1}{}`, `{"a":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := members(b)
		if (err == nil) != isJSONObject(b) {
			t.Fatalf("members(%q) err %v but isJSONObject %v", b, err, isJSONObject(b))
		}
	})
}
