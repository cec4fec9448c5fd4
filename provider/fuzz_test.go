package provider

import (
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
		"jwe:" + compact + "#k?key=file:/a%26b&trim", "jwe:" + flat + "#k?optional", compact, flat,
		"secretfile:/x?file&refresh=HUP", "secretfile:/x?refresh=off", "aws:ssm:/p?refresh=none&trim",
		"secretfile:/x?file=/y&refresh=SIGUSR1", "secretfile:/x?file&refresh=40", "secretfile:/x?refresh=HUP",
		`>>vault:pki/issue/web#certificate#{"common_name":"web.example.com"}?file`, ">>vault:pki/issue/web",
		`>>vault:t/encrypt/k#c#{"p":"a#b?c&d}"}?optional&trim`, `>>vault:p##{"n":1.50,"o":{"a":[1]}}`,
		`>>vault:p#k#{"a":1} ?file`, `>>vault:p#k#{"a":`, ">>vault:p#k#?file", `>>vault:p#{"a":1}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok, err := Parse(s)
		if !ok {
			r, ok, err = ParseBare(s)
		}
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
		if r.IsWrite() {
			checkWrite(t, s, r)
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

// checkWrite checks what the write form promises of a parsed write: its
// body is a JSON object, it is never pinned, and ShownReference shows
// none of the body's values.
func checkWrite(t *testing.T, s string, r Ref) {
	if r.Pinned() || r.Version != "" {
		t.Fatalf("Parse(%q): a write is pinned or has a version: %+v", s, r)
	}
	obj, err := WriteData(r.Body)
	if err != nil {
		t.Fatalf("Parse(%q): body %q is not a JSON object", s, r.Body)
	}
	shown := ShownReference(s)
	if !strings.HasPrefix(shown, ">>vault:"+r.Name) {
		t.Fatalf("ShownReference(%q) = %q", s, shown)
	}
	// What ShownReference may show: the path, the key, the options and
	// the body's member names. A string value of the body may appear in
	// it only when it is one of those.
	full := r.String()
	allowed := r.Name + "#" + r.Key + full[len(r.writeString(r.Body)):]
	for name := range obj {
		allowed += "\x00" + name
	}
	for _, v := range obj {
		if str, ok := v.(string); ok && len(str) >= 4 && strings.Contains(shown, str) && !strings.Contains(allowed, str) {
			t.Fatalf("ShownReference(%q) = %q shows the body's value %q", s, shown, str)
		}
	}
}

// FuzzShownReference checks that ShownReference never panics and never
// shows what follows the second '#' of a malformed write (its body, or
// what was meant as one), whatever the error.
func FuzzShownReference(f *testing.F) {
	for _, s := range []string{
		`>>vault:pki/issue/web#certificate#{"common_name":"w"}?file`, `>>vault:p#k#{"a":`, `>>vault:p#k?file#{"pw":"x"}`,
		`>>vault:p?x#k#{"pw":"x"}`, `>>vault:p#{"pw":"x"}`, `>>vault:p#k#{"a":"b"} x`, ">>vault:", "vault:a#b#c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		shown := ShownReference(s)
		rest, ok := strings.CutPrefix(s, prefixWrite)
		if !ok {
			return
		}
		_, _, err := Parse(s)
		if err == nil {
			return // checked by FuzzParse
		}
		if msg := err.Error(); strings.Contains(rest, "#") {
			_, after, _ := strings.Cut(rest, "#")
			// A body with a character no message of ours holds: were it
			// in the error, the error quoted it.
			if _, body, ok := strings.Cut(after, "#"); ok && strings.ContainsAny(body, "~^|$") && strings.Contains(msg, body) {
				t.Fatalf("Parse(%q): the error quotes the body: %v", s, msg)
			}
		}
		// Nothing from a second '#' or a first '{' on is shown.
		parts := strings.SplitN(rest, "#", 3)
		if !strings.Contains(rest, "{") && (len(parts) < 3 || parts[2] == "") {
			return // no body: shown as written
		}
		head, ok := strings.CutSuffix(shown, "{…}")
		if !ok || !strings.HasPrefix(s, head) || strings.Contains(head, "{") || strings.Count(head, "#") > 2 ||
			strings.Count(head, "#") == 2 && !strings.HasSuffix(head, "#") {
			t.Fatalf("ShownReference(%q) = %q", s, shown)
		}
	})
}
