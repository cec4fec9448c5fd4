package provider

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors about values name keys and shapes, never contents: a JSON
// decoder's own errors quote the input, so none is passed on.

var errNotObject = errors.New("the value is not a JSON object, so a JSON key cannot be selected from it")

// member is one top-level member of a JSON object, as a variable value:
// strings unquoted, anything else compact JSON.
type member struct{ name, value string }

// members returns the top-level members of a JSON object in document order.
func members(val []byte) ([]member, error) {
	if !json.Valid(val) {
		return nil, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(val))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errNotObject
	}
	var ms []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errNotObject
		}
		ms = append(ms, member{t.(string), jsonText(raw)})
	}
	return ms, nil
}

// jsonText delivers a JSON value: a string unquoted, anything else compact.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// selectKey returns the member key of a JSON object. When it is missing,
// the error lists the keys that exist (never values).
func selectKey(val []byte, key string) ([]byte, error) {
	ms, err := members(val)
	if err != nil {
		return nil, err
	}
	var found *member
	keys := make([]string, 0, len(ms))
	for i, m := range ms {
		keys = append(keys, m.name)
		if m.name == key {
			found = &ms[i] // the last duplicate wins, as in encoding/json
		}
	}
	if found == nil {
		slices.Sort(keys)
		return nil, fmt.Errorf("JSON key %q not in secret (keys: %s)", key, strings.Join(slices.Compact(keys), ", "))
	}
	return []byte(found.value), nil
}

// isJSONObject reports whether val is one JSON object.
func isJSONObject(val []byte) bool {
	v := bytes.TrimLeft(val, " \t\r\n") // JSON's own white space
	return len(v) > 0 && v[0] == '{' && json.Valid(v)
}

// expandJSON returns the variables --expand-json makes of a JSON object
// referenced by variable name.
func expandJSON(name string, val []byte) ([]member, error) {
	ms, err := members(val)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.name == "" || strings.ContainsAny(m.name, "=\x00") {
			return nil, fmt.Errorf("--expand-json: JSON key %q cannot be a variable name", m.name)
		}
		if strings.IndexByte(m.value, 0) >= 0 {
			return nil, fmt.Errorf("--expand-json: the value of JSON key %q contains a NUL byte", m.name)
		}
	}
	return ms, nil
}

func decodeBase64(val []byte) ([]byte, error) {
	s := strings.TrimSpace(string(val))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("encoding=base64: the value is not valid base64")
}

// trimNewline strips one trailing newline (\n or \r\n).
func trimNewline(val []byte) []byte {
	if v, ok := bytes.CutSuffix(val, []byte("\n")); ok {
		v, _ = bytes.CutSuffix(v, []byte("\r"))
		return v
	}
	return val
}
