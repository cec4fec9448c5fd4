// Package decrypt computes the JSON patch that replaces the jwe: values of
// a Secret with their plaintext (SPEC §11, the /secrets endpoint; §9 for
// jwe:). It decrypts through the root module's jwe store, the code
// secrets-init itself runs: the store unwraps each distinct content key
// once, its KMS calls bounded by the Limiter and the context's deadline.
package decrypt

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
	"github.com/secrets-init/secrets-init/webhook/inject"
	corev1 "k8s.io/api/core/v1"
)

// Label opts a Secret in: secrets-init.io/decrypt: jwe.
const (
	Label      = "secrets-init.io/decrypt"
	LabelValue = "jwe"
)

// Decrypter decrypts the jwe: values of Secrets.
type Decrypter struct {
	Open      provider.Opener   // the jwe store (jwe.Open)
	Settings  provider.Settings // its Log and Limit
	DetectJWE bool              // --jwe-detect: a bare JWE value is a jwe: reference
}

// A DenyError is a reason to refuse the Secret: it names the Secret, the
// key and the cause, never a value.
type DenyError struct{ Msg string }

func (e *DenyError) Error() string { return e.Msg }

// Labelled reports whether s asks to be decrypted.
func Labelled(s *corev1.Secret) bool { return s.Labels[Label] == LabelValue }

// value is one data or stringData entry that holds a reference.
type value struct {
	field, key string // field: data or stringData
	ref        provider.Ref
}

// Patch returns the operations that replace every jwe: value of s (data
// and stringData) with its plaintext; old, on UPDATE, is the stored Secret:
// a value it already holds is left alone (it was decrypted, or let
// through, when it was stored, and a plaintext is never resolved again).
// Any value that cannot be decrypted makes the whole Secret a *DenyError.
func (d *Decrypter) Patch(ctx context.Context, s, old *corev1.Secret) ([]inject.Op, error) {
	name := s.Name
	if s.Namespace != "" {
		name = s.Namespace + "/" + name
	}
	var vals []value
	var denials []string
	add := func(field, key, v string, unchanged bool) {
		if unchanged {
			return
		}
		ref, ok, err := provider.Parse(v)
		if !ok && d.DetectJWE {
			ref, ok, err = provider.ParseBare(v)
		}
		switch {
		case !ok || (err == nil && ref.Kind != provider.JWE):
			return // not for this endpoint: other references stay for secrets-init
		case err != nil && strings.HasPrefix(v, "jwe:"):
			denials = append(denials, fmt.Sprintf("%s %s: malformed reference: %v", field, key, err))
		case err != nil:
			return // another store's malformed reference is not ours to judge
		case ref.Key != "":
			denials = append(denials, fmt.Sprintf("%s %s: a #%s selector is not supported in a Secret: encrypt each value on its own", field, key, ref.Key))
		case ref.Opts.File || ref.Opts.Optional:
			denials = append(denials, fmt.Sprintf("%s %s: ?file and ?optional have no meaning in a Secret", field, key))
		case ref.KeyURI != "" && !allowed(ref.KeyURI):
			// In a pod, ?key= is the operator's; in a Secret, it is written
			// by whoever may create Secrets: the allow-list binds it too.
			denials = append(denials, fmt.Sprintf("%s %s: ?key= names key %s, which %s does not allow", field, key, ref.KeyURI, jwe.EnvKeys))
		default:
			vals = append(vals, value{field, key, ref})
		}
	}
	for _, k := range sortedKeys(s.Data) {
		prev, had := []byte(nil), false
		if old != nil {
			prev, had = old.Data[k]
		}
		add("data", k, string(s.Data[k]), had && bytes.Equal(prev, s.Data[k]))
	}
	for _, k := range sortedKeys(s.StringData) {
		prev, had := "", false
		if old != nil {
			prev, had = old.StringData[k]
		}
		add("stringData", k, s.StringData[k], had && prev == s.StringData[k])
	}
	if len(denials) > 0 {
		return nil, deny(name, denials)
	}
	if len(vals) == 0 {
		return nil, nil
	}

	// The store is given each distinct JWE once; it unwraps each distinct
	// content key once.
	idx := map[string]int{}
	var targets []provider.Target
	for _, v := range vals {
		k := v.ref.String()
		if _, ok := idx[k]; !ok {
			idx[k] = len(targets)
			targets = append(targets, v.ref.Target)
		}
	}
	st, err := d.Open(ctx, d.Settings)
	if err != nil {
		return nil, deny(name, []string{"the jwe: store: " + err.Error()})
	}
	results := st.Fetch(ctx, targets)
	var ops []inject.Op
	for _, v := range vals {
		r := results[idx[v.ref.String()]]
		if r.Value == nil && r.Err == nil && ctx.Err() != nil {
			r.Err = fmt.Errorf("not decrypted in time: %v", context.Cause(ctx))
		}
		plain, err := finish(r, v.ref.Opts)
		if err == nil && v.field == "stringData" && !utf8.Valid(plain) {
			err = errors.New("the plaintext is not UTF-8, which stringData cannot hold: put the value in data")
		}
		if err != nil {
			denials = append(denials, fmt.Sprintf("%s %s: %s", v.field, v.key, oneLine(err)))
			continue
		}
		op := inject.Op{Op: "replace", Path: "/" + v.field + "/" + escape(v.key)}
		if v.field == "data" {
			op.Value = plain // JSON carries []byte as base64
		} else {
			op.Value = string(plain)
		}
		ops = append(ops, op)
	}
	if len(denials) > 0 {
		return nil, deny(name, denials)
	}
	return ops, nil
}

// allowed reports whether SECRETS_INIT_JWE_KEYS (the webhook's
// environment), when set, allows keyURI.
func allowed(keyURI string) bool {
	v, ok := os.LookupEnv(jwe.EnvKeys)
	if !ok {
		return true
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(keyURI, p) {
			return true
		}
	}
	return false
}

// finish applies the options a value may carry in a Secret.
func finish(r provider.Result, o provider.Options) ([]byte, error) {
	if r.Err != nil {
		return nil, r.Err
	}
	if r.Value == nil {
		return nil, errors.New("no value (internal error)")
	}
	val := r.Value
	if o.Base64 {
		var err error
		if val, err = decodeBase64(val); err != nil {
			return nil, err
		}
	}
	if o.Trim {
		if v, ok := bytes.CutSuffix(val, []byte("\n")); ok {
			val, _ = bytes.CutSuffix(v, []byte("\r"))
		}
	}
	return val, nil
}

// decodeBase64 reads encoding=base64 as secrets-init does: standard or
// URL alphabet, padded or not.
func decodeBase64(val []byte) ([]byte, error) {
	s := strings.TrimSpace(string(val))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("encoding=base64: the plaintext is not valid base64")
}

func deny(secret string, reasons []string) error {
	return &DenyError{Msg: "Secret " + secret + ": " + strings.Join(reasons, "; ")}
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// escape makes a key a JSON Pointer segment (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
