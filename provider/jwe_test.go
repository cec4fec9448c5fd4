package provider

import (
	"strings"
	"testing"
)

// A JWE's shape (the parser checks no more): header, key, iv, ciphertext, tag.
const (
	hdr     = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0" // {"alg":"RSA-OAEP-256","enc":"A256GCM"}
	compact = hdr + ".a2V5.aXY.Y2lwaGVy.dGFn"
	flat    = `{"protected":"` + hdr + `","encrypted_key":"a2V5","iv":"aXY","ciphertext":"Y2lwaGVy","tag":"dGFn","header":{"x":"#?"}}`
)

func TestParseJWE(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
	}{
		{"jwe:" + compact, Ref{Target: Target{Kind: JWE, Name: compact}}},
		{"jwe:" + compact + "#password?trim", Ref{Target: Target{Kind: JWE, Name: compact}, Key: "password", Opts: Options{Trim: true}}},
		{"jwe:" + compact + "?key=gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1&file",
			Ref{Target: Target{Kind: JWE, Name: compact, KeyURI: "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"}, Opts: Options{File: true}}},
		{"jwe:" + compact + "?key=file:/keys/a%26b%3Fc%23d.pem", Ref{Target: Target{Kind: JWE, Name: compact, KeyURI: "file:/keys/a&b?c#d.pem"}}},
		{"jwe:" + compact + "?key=aws-kms://arn:aws:kms:eu-west-1:123456789012:key/1234+5", Ref{Target: Target{Kind: JWE, Name: compact, KeyURI: "aws-kms://arn:aws:kms:eu-west-1:123456789012:key/1234+5"}}},
		{"jwe:" + flat, Ref{Target: Target{Kind: JWE, Name: flat}}},
		{"jwe:" + flat + "#user?optional&encoding=base64", Ref{Target: Target{Kind: JWE, Name: flat}, Key: "user", Opts: Options{Optional: true, Base64: true}}},
		{"jwe:" + compact[:len(compact)-4], Ref{Target: Target{Kind: JWE, Name: compact[:len(compact)-4]}}}, // an empty tag is the store's to refuse
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

func TestParseJWEMalformed(t *testing.T) {
	tests := []struct{ in, want string }{
		{"jwe:", "5 dot-separated parts"},
		{"jwe:a.b.c", "5 dot-separated parts, this one 3"},
		{"jwe:" + hdr + ".a.b.c.d.e", "this one 6"},
		{"jwe:" + hdr + ".a=.b.c.d", "part 2 of the compact JWE is not base64url"},
		{"jwe:eyJ.a.b.c.d", "protected header is not base64url JSON"},
		{"jwe:bm90anNvbg.a.b.c.d", "protected header is not base64url JSON"}, // "notjson"
		{"jwe:eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b.c.d", "lacks alg or enc"},   // {"alg":"RSA-OAEP-256"}
		{"jwe:{", "not valid JSON"},
		{"jwe:" + flat + "x", "unexpected text after the JSON JWE"},
		{"jwe:{\"protected\":1}", "not a JSON object of strings"},
		{"jwe:{\"protected\":\"" + hdr + "\"}", "lacks protected or ciphertext"},
		{"jwe:{\"protected\":\"" + hdr + "\",\"ciphertext\":\"\",\"recipients\":[]}", "general JSON serialisation"},
		{"jwe:" + compact + "?key=", "needs a percent-encoded key URI"},
		{"jwe:" + compact + "?key=%zz", "needs a percent-encoded key URI"},
		{"jwe:" + compact + "?key=file:%0A", "control character"},
		{"jwe:" + compact + "?key=https://example.com/k", "is not a key URI"},
		{"jwe:" + compact + "?key=file:", "is not a key URI"},
		{"jwe:" + compact + "?key=file:a&key=file:b", "given twice"},
		{"secretfile:/x?key=file:/k", "for jwe: references only"},
	}
	for _, tt := range tests {
		_, ok, err := Parse(tt.in)
		if !ok || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = ok %v, err %v; want an error with %q", tt.in, ok, err, tt.want)
		}
	}
}

func TestParseBare(t *testing.T) {
	for _, v := range []string{compact, flat, compact + "#k?trim"} {
		r, ok, err := ParseBare(v)
		if !ok || err != nil || r.Kind != JWE {
			t.Errorf("ParseBare(%q) = %+v, %v, %v; want a jwe: reference", v, r, ok, err)
		}
	}
	for _, v := range []string{"", "plain", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", `{"a":1}`, `{"protected":"x","ciphertext":""}`,
		"eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b.c.d", "{", compact + "x=y"} {
		if r, ok, err := ParseBare(v); ok || err != nil {
			t.Errorf("ParseBare(%q) = %+v, %v, %v; want not a reference", v, r, ok, err)
		}
	}
	// A JWE with bad options is a reference, and an error.
	if _, ok, err := ParseBare(compact + "?bogus"); !ok || err == nil {
		t.Errorf("ParseBare with a bad option = %v, %v; want a malformed reference", ok, err)
	}
}

func TestShortJWE(t *testing.T) {
	r, _, _ := Parse("jwe:" + compact + "#k?trim&key=file:/k.pem")
	if got, want := shortJWE(r), "jwe:"+compact[:12]+"…"+compact[len(compact)-8:]+"#k?trim&key=file:/k.pem"; got != want {
		t.Errorf("shortJWE = %q, want %q", got, want)
	}
}
