package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The Vault write form (bank-vaults vault-env's syntax, SPEC §8):
//
//	>>vault:PATH[#KEY[#JSON_BODY]][?OPTIONS]
//
// PATH ends at the first '#' or '?'; KEY at the next '#' or '?'. JSON_BODY
// starts right after the second '#' and is one JSON object (JSON's
// whitespace around it allowed): it ends where that object ends (a JSON
// scanner finds its closing brace, so '#', '?', '&' and '}' inside its
// strings are its own). What follows it is nothing, or '?' and the
// options, which may hold no '#' or '{'. Without a body the write sends
// {}. Every §3 option applies to the value selected from the answer.
//
// The body is kept in Target.Body in a canonical form (compact, members
// sorted, numbers as written), so that two variables whose bodies differ
// only in spacing or member order share one write. A body may hold a
// secret (a password written to an endpoint), so it is never shown:
// messages and `check` show its member names only (ShownReference).

const prefixWrite = ">>vault:"

// noBody is Target.Body of a write without a body.
const noBody = "{}"

// parseWrite reads what follows ">>vault:".
func parseWrite(rest string) (Ref, error) {
	r := Ref{Target: Target{Kind: Vault}}
	const form = "want >>vault:PATH[#KEY[#JSON_BODY]][?OPTIONS]"
	i := strings.IndexAny(rest, "#?")
	if i < 0 {
		i = len(rest)
	}
	path, rest := rest[:i], rest[i:]
	body := noBody
	if strings.HasPrefix(rest, "#") {
		rest = rest[1:]
		j := strings.IndexAny(rest, "#?")
		if j < 0 {
			j = len(rest)
		}
		r.Key, rest = rest[:j], rest[j:]
		if strings.HasPrefix(r.Key, "{") {
			return Ref{}, errors.New("the KEY of a write cannot start with '{' (a body goes after a second '#': >>vault:PATH##JSON_BODY selects no key)")
		}
		if strings.HasPrefix(rest, "#") {
			b, n, err := canonicalBody(rest[1:])
			if err != nil {
				return Ref{}, err
			}
			body, rest = b, rest[1+n:]
		}
	}
	if rest != "" {
		if rest[0] != '?' { // cannot happen: a body ends at '?' or the end
			return Ref{}, errors.New("unexpected text after the write's body (" + form + ")")
		}
		if strings.ContainsAny(rest[1:], "#{") {
			// A body written after the options: the option errors
			// would quote it.
			return Ref{}, errors.New("'#' or '{' in the options: a write's body goes before the '?' (" + form + ")")
		}
		o, keyURI, err := parseOptions(rest[1:])
		if err != nil {
			return Ref{}, err
		}
		if keyURI != "" {
			return Ref{}, errors.New("option key= is for jwe: references only")
		}
		r.Opts = o
	}
	path = strings.Trim(path, "/")
	if path == "" || strings.Contains(path, "//") || !allOf(path, isPrintable) {
		return Ref{}, errors.New("invalid Vault path (" + form + ")")
	}
	r.Name, r.Body = path, body
	return r, nil
}

// canonicalBody reads the JSON object at the start of s and returns it in
// canonical form and its length in s. It ends at the object's closing
// brace; what follows must be nothing or '?'. Errors say where, never what:
// the body may hold a secret.
func canonicalBody(s string) (string, int, error) {
	// JSON's own whitespace may surround the object, as vault-env's JSON
	// decoding allows (a body folded over lines in a manifest).
	t := strings.TrimLeft(s, jsonSpace)
	if t == "" || t[0] == '?' {
		return "", 0, errors.New("empty JSON body after the second '#' (give a JSON object such as {\"common_name\":\"web.example.com\"}, or leave out the '#')")
	}
	if t[0] != '{' {
		return "", 0, errors.New("the body after the second '#' is not a JSON object: it must start with '{' (a write has no #VERSION)")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return "", 0, fmt.Errorf("the JSON body after the second '#' is not valid JSON (at byte %d of the body)", se.Offset)
		default:
			return "", 0, errors.New("the JSON body after the second '#' is not a complete JSON object")
		}
	}
	n := int(dec.InputOffset())
	n += len(s[n:]) - len(strings.TrimLeft(s[n:], jsonSpace))
	if n < len(s) && s[n] != '?' {
		return "", 0, fmt.Errorf("unexpected text after the JSON body's closing '}' (at byte %d of the body; options start with '?')", n)
	}
	canon, err := encodeBody(obj)
	if err != nil {
		return "", 0, errors.New("the JSON body after the second '#' cannot be encoded")
	}
	return canon, n, nil
}

// jsonSpace is JSON's whitespace.
const jsonSpace = " \t\r\n"

// encodeBody is the canonical form of a body: compact, members sorted,
// numbers as written, no HTML escaping.
func encodeBody(obj map[string]any) (string, error) {
	if obj == nil {
		return "", errors.New("null body")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// WriteData decodes a Target.Body for the write's request.
func WriteData(body string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errors.New("internal error: the write's body is not a JSON object")
	}
	return obj, nil
}

// IsWrite reports whether t is a Vault write (>>vault:): a POST that
// issues something, never a read, never pinned and never polled.
func (t Target) IsWrite() bool { return t.Kind == Vault && t.Body != "" }

// writeString formats a write reference; body is what is shown of the
// body (the canonical body, or its redaction).
func (r Ref) writeString(body string) string {
	s := prefixWrite + r.Name
	if r.Key != "" || r.Body != noBody {
		s += "#" + r.Key
	}
	if r.Body != noBody {
		s += "#" + body
	}
	return s
}

// redactBody shows a body's member names only: {"common_name":…,"ttl":…}.
func redactBody(body string) string {
	obj, err := WriteData(body)
	if err != nil {
		return "{…}"
	}
	names := make([]string, 0, len(obj))
	for name := range obj {
		q, _ := json.Marshal(name)
		names = append(names, string(q)+":…")
	}
	slices.Sort(names)
	return "{" + strings.Join(names, ",") + "}"
}

// Shown is how messages show a variable's value that Parse (or ParseBare)
// took for a reference, given what it returned: a jwe: reference cut
// short, a write without its body's values (ShownReference), a malformed
// long JWE cut to its first 32 bytes; anything else as written. bare: the
// value may be a JWE without its prefix.
func Shown(value string, ref Ref, err error, bare bool) string {
	switch {
	case err == nil && ref.Kind == JWE:
		return shortJWE(ref)
	case strings.HasPrefix(value, prefixWrite): // its body may hold a secret
		return ShownReference(value)
	case err != nil && len(value) > 48 && (strings.HasPrefix(value, prefixJWE) || bare):
		return strings.ToValidUTF8(value[:32], "") + "…"
	}
	return value
}

// ShownReference is how messages, logs and `check` show a variable's
// value when it is a reference: a write's body with its values left out
// (it may hold a secret), a jwe: reference cut short, anything else as
// written. A malformed write is cut where a body could start (after its
// second '#', or at its first '{').
func ShownReference(value string) string {
	rest, ok := strings.CutPrefix(value, prefixWrite)
	if !ok {
		if r, isRef, err := Parse(value); isRef && err == nil && r.Kind == JWE {
			return shortJWE(r)
		}
		return value
	}
	if r, err := parseWrite(rest); err == nil {
		shown := r.writeString(redactBody(r.Body))
		if full := r.String(); len(full) > len(r.writeString(r.Body)) {
			shown += full[len(r.writeString(r.Body)):] // the options
		}
		return shown
	}
	// Malformed: shown up to where a body could start (after a second
	// '#', or at a first '{'), the rest hidden.
	cut := len(rest)
	if i := strings.IndexByte(rest, '{'); i >= 0 {
		cut = i
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		if j := strings.IndexByte(rest[i+1:], '#'); j >= 0 && i+j+2 < cut {
			cut = i + j + 2
		}
	}
	if cut == len(rest) {
		return value
	}
	return prefixWrite + rest[:cut] + "{…}"
}
