package provider

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The jwe: reference (SPEC §9): jwe:<JWE>[#KEY][?options], the JWE in its
// compact form (five base64url segments joined by dots) or its flattened
// JSON form (one JSON object). The parser checks the JWE's shape only; the
// JWE store checks its algorithms and decrypts it.

// KeySchemes are the prefixes of the key URIs (Tink's names).
var KeySchemes = []string{"gcp-kms://", "aws-kms://", "azure-kv://", "hcvault://", "file:"}

// IsKeyURI reports whether s names a key by one of the KeySchemes.
func IsKeyURI(s string) bool {
	for _, p := range KeySchemes {
		if strings.HasPrefix(s, p) && len(s) > len(p) {
			return true
		}
	}
	return false
}

const jweForm = "want jwe:<compact or flattened JSON JWE>[#KEY][?options]"

// splitJWE splits what follows jwe: into the JWE with its #KEY, and the
// options. A JSON JWE ends where its object does: its strings may hold
// '#' or '?'.
func splitJWE(rest string) (body, opts string, hasOpts bool, err error) {
	if !strings.HasPrefix(rest, "{") {
		body, opts, hasOpts = strings.Cut(rest, "?")
		return body, opts, hasOpts, nil
	}
	dec := json.NewDecoder(strings.NewReader(rest))
	var raw json.RawMessage
	if dec.Decode(&raw) != nil {
		return "", "", false, errors.New("the JSON JWE is not valid JSON (" + jweForm + ")")
	}
	end := int(dec.InputOffset())
	tail, opts, hasOpts := strings.Cut(rest[end:], "?")
	if tail != "" && tail[0] != '#' {
		return "", "", false, errors.New("unexpected text after the JSON JWE (" + jweForm + ")")
	}
	return rest[:end] + tail, opts, hasOpts, nil
}

func (r *Ref) parseJWE(body string) error {
	jwe, key := body, ""
	if strings.HasPrefix(body, "{") {
		end := jsonEnd(body)
		jwe = body[:end]
		if end < len(body) {
			key = body[end+1:] // after '#', which splitJWE checked
		}
	} else {
		jwe, key = cutKey(body)
	}
	if err := checkJWE(jwe); err != nil {
		return err
	}
	if r.KeyURI != "" && !IsKeyURI(r.KeyURI) {
		return fmt.Errorf("key=%s is not a key URI (want one of %s)", escapeKeyURI(r.KeyURI), strings.Join(KeySchemes, " "))
	}
	r.Name, r.Key = jwe, key
	return nil
}

// jsonEnd returns the length of the JSON value s begins with.
func jsonEnd(s string) int {
	dec := json.NewDecoder(strings.NewReader(s))
	var raw json.RawMessage
	if dec.Decode(&raw) != nil {
		return len(s)
	}
	return int(dec.InputOffset())
}

// checkJWE checks the shape of a JWE: its serialisation, base64url
// segments, and a protected header that is a JSON object naming alg and enc.
func checkJWE(s string) error {
	if strings.HasPrefix(s, "{") {
		var j struct {
			Protected  *string         `json:"protected"`
			Ciphertext *string         `json:"ciphertext"`
			Recipients json.RawMessage `json:"recipients"`
		}
		if json.Unmarshal([]byte(s), &j) != nil {
			return errors.New("the JSON JWE is not a JSON object of strings (" + jweForm + ")")
		}
		switch {
		case j.Recipients != nil:
			return errors.New("a JWE with a recipients array (general JSON serialisation) is not supported: use the compact or flattened form")
		case j.Protected == nil || j.Ciphertext == nil:
			return errors.New("the JSON JWE lacks protected or ciphertext")
		}
		// Flattened JSON may carry alg in its unprotected headers: the
		// store checks the merged headers.
		return checkProtected(*j.Protected, false)
	}
	f := strings.Split(s, ".")
	if len(f) != 5 {
		return fmt.Errorf("a compact JWE has 5 dot-separated parts, this one %d (%s)", len(f), jweForm)
	}
	for i, seg := range f {
		if !allOf(seg, isBase64URLChar) {
			return fmt.Errorf("part %d of the compact JWE is not base64url", i+1)
		}
	}
	return checkProtected(f[0], true)
}

// checkProtected checks that a protected header is base64url JSON and,
// when algEnc, that it names alg and enc.
func checkProtected(p string, algEnc bool) error {
	b, err := base64.RawURLEncoding.DecodeString(p)
	var h struct{ Alg, Enc *string }
	if err != nil || !bytes.HasPrefix(b, []byte("{")) || json.Unmarshal(b, &h) != nil {
		return errors.New("the JWE's protected header is not base64url JSON")
	}
	if algEnc && (h.Alg == nil || h.Enc == nil) {
		return errors.New("the JWE's protected header lacks alg or enc")
	}
	return nil
}

// ParseBare reads a value that is a JWE without the jwe: prefix, as
// SECRETS_INIT_JWE_DETECT=1 asks (Secrets that carry bare JWE). It returns
// ok=false for anything that is not a well-formed JWE.
func ParseBare(value string) (ref Ref, ok bool, err error) {
	if !strings.HasPrefix(value, "eyJ") && !strings.HasPrefix(value, "{") {
		return Ref{}, false, nil
	}
	body, _, _, err := splitJWE(value)
	if err != nil {
		return Ref{}, false, nil
	}
	jwe := body
	if strings.HasPrefix(body, "{") {
		jwe = body[:jsonEnd(body)]
	} else {
		jwe, _ = cutKey(body)
	}
	if checkJWE(jwe) != nil {
		return Ref{}, false, nil
	}
	ref, err = parse(JWE, value, value)
	return ref, true, err
}

// shortJWE is how a jwe: reference is shown in messages: the JWE's first
// and last characters (it is ciphertext, but long; its end tells JWEs
// apart), then its selector and options.
func shortJWE(r Ref) string {
	s := r.String()
	const head, tail = 12, 8
	if len(r.Name) <= head+tail+8 {
		return s
	}
	return prefixJWE + r.Name[:head] + "…" + r.Name[len(r.Name)-tail:] + s[len(prefixJWE)+len(r.Name):]
}

// escapeKeyURI percent-encodes what key= cannot hold as it is.
func escapeKeyURI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && (isAlnum(rune(c)) || strings.IndexByte("-._~:/@!$'()*+,;=", c) >= 0) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unescapeKeyURI(s string) (string, error) {
	u, err := url.PathUnescape(s)
	if err != nil || u == "" {
		return "", errors.New("option key= needs a percent-encoded key URI")
	}
	for _, c := range []byte(u) {
		if c < ' ' || c == 0x7f {
			return "", errors.New("option key= holds a control character")
		}
	}
	return u, nil
}

func isBase64URLChar(c rune) bool { return isAlnum(c) || c == '-' || c == '_' }

// EnvDetectJWE=1 makes a bare JWE value a jwe: reference.
const EnvDetectJWE = "SECRETS_INIT_JWE_DETECT"

// DetectJWE reads SECRETS_INIT_JWE_DETECT from getenv: "1" or "true" turns
// detection of bare JWE values on; unset, empty, "0" or "false" leaves it
// off; anything else is an error.
func DetectJWE(getenv func(string) string) (bool, error) {
	switch v := getenv(EnvDetectJWE); strings.ToLower(v) {
	case "1", "true":
		return true, nil
	case "", "0", "false":
		return false, nil
	default:
		return false, fmt.Errorf("%s=%q: want 1 or 0", EnvDetectJWE, v)
	}
}
