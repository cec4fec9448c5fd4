package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-init/secrets-init/envfile"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// A Use is one environment variable that some workload is given: where it
// was found, and the value as written.
type Use struct {
	// File is where the variable was read: a path as given (or found in a
	// directory), or "-" for stdin.
	File string
	// Workload names what runs with the variable: "Deployment/NS/NAME",
	// "compose/SERVICE", or "dotenv" for a dotenv file.
	Workload string
	// Container is the container (Kubernetes) or empty.
	Container string
	// ServiceAccount is "NS/NAME" for a Kubernetes workload, else empty.
	ServiceAccount string
	Var, Value     string
	// Context is what the same container's (service's, file's) variables
	// say about short references.
	Context Context
}

// A Context is what a workload's own environment gives its short
// references at run time: they win over the flags.
type Context struct {
	AWSRegion     string // AWS_REGION, else AWS_DEFAULT_REGION
	GoogleProject string // SECRETS_INIT_GOOGLE_PROJECT, else GOOGLE_CLOUD_PROJECT, else GOOGLE_PROJECT
	AzureVaultURL string // AZURE_KEY_VAULT_URL
	// The jwe: settings: SECRETS_INIT_JWE_KEY, SECRETS_INIT_JWE_KEYS
	// (JWEKeysSet: given, even empty) and SECRETS_INIT_JWE_DETECT.
	JWEKey, JWEKeys string
	JWEKeysSet      bool
	JWEDetect       string
}

// lookup reads the workload's jwe: settings as the JWE store reads its
// environment.
func (c Context) lookup(name string) (string, bool) {
	switch name {
	case jwe.EnvKey:
		return c.JWEKey, c.JWEKey != ""
	case jwe.EnvKeys:
		return c.JWEKeys, c.JWEKeysSet
	case jwe.EnvDetect:
		return c.JWEDetect, c.JWEDetect != ""
	}
	return "", false
}

// parse parses a variable's value as the engine would in its workload: a
// bare JWE is a jwe: reference when the workload sets
// SECRETS_INIT_JWE_DETECT=1.
func (u Use) parse() (provider.Ref, bool, error) {
	ref, isRef, err := provider.Parse(u.Value)
	if !isRef {
		if detect, _ := jwe.Detect(func(n string) string { v, _ := u.Context.lookup(n); return v }); detect {
			return provider.ParseBare(u.Value)
		}
	}
	return ref, isRef, err
}

// withContext sets the Context of uses, all of one environment.
func withContext(uses []Use) []Use {
	env := map[string]string{}
	keysSet := false
	for _, u := range uses {
		if _, isRef, _ := provider.Parse(u.Value); !isRef && u.Value != "" {
			env[u.Var] = u.Value
		}
		keysSet = keysSet || u.Var == jwe.EnvKeys
	}
	first := func(names ...string) string {
		for _, n := range names {
			if v := env[n]; v != "" {
				return v
			}
		}
		return ""
	}
	c := Context{
		AWSRegion:     first("AWS_REGION", "AWS_DEFAULT_REGION"),
		GoogleProject: first("SECRETS_INIT_GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT", "GOOGLE_PROJECT"),
		AzureVaultURL: first("AZURE_KEY_VAULT_URL"),
		JWEKey:        env[jwe.EnvKey],
		JWEKeys:       env[jwe.EnvKeys],
		JWEKeysSet:    keysSet,
		JWEDetect:     env[jwe.EnvDetect],
	}
	for i := range uses {
		uses[i].Context = c
	}
	return uses
}

// Where is a short, human form of the place the variable comes from.
func (u Use) Where() string {
	s := u.File
	if u.Workload != "dotenv" {
		s += ": " + u.Workload
	}
	if u.Container != "" {
		s += " container " + u.Container
	}
	return s
}

// Group is the name of the identity the variable is read by, for the
// grouping by.
func (u Use) Group(by string) string {
	switch by {
	case "none":
		return "secrets-init"
	case "workload":
		if u.Workload == "dotenv" {
			return "dotenv/" + u.File
		}
		return u.Workload
	}
	switch {
	case u.ServiceAccount != "":
		return "serviceaccount/" + u.ServiceAccount
	case u.Workload == "dotenv":
		return "dotenv/" + u.File
	}
	return u.Workload
}

// workloadKinds are the Kubernetes kinds whose pods' variables are read,
// with the path from the object to its pod spec.
var workloadKinds = map[string][]string{
	"Pod":         {"spec"},
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

// yamlExts are the extensions of the files read in a directory, besides
// dotenv files.
var yamlExts = []string{".yaml", ".yml", ".json"}

// isDotenv tells whether a file's name marks it as a dotenv file: .env,
// NAME.env or .env.NAME.
func isDotenv(path string) bool {
	b := filepath.Base(path)
	return b == ".env" || strings.HasSuffix(b, ".env") || strings.HasPrefix(b, ".env.")
}

// ReadPaths reads the variables of every -f argument: a file, a directory
// (its *.yaml, *.yml, *.json and dotenv files, recursively, in lexical
// order; hidden directories are skipped) or "-" for stdin.
func ReadPaths(paths []string, stdin io.Reader) ([]Use, error) {
	var uses []Use
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			u, err := ReadYAML("-", data)
			if err != nil {
				return nil, err
			}
			uses = append(uses, u...)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			u, err := readFile(p)
			if err != nil {
				return nil, err
			}
			uses = append(uses, u...)
			continue
		}
		var files []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && (slices.Contains(yamlExts, strings.ToLower(filepath.Ext(path))) || isDotenv(path)) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			u, err := readFile(f)
			if err != nil {
				return nil, err
			}
			uses = append(uses, u...)
		}
	}
	return uses, nil
}

func readFile(path string) ([]Use, error) {
	if isDotenv(path) {
		return ReadDotenv(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ReadYAML(path, data)
}

// ReadDotenv reads the variables of a dotenv file with the parser that
// --env-file uses.
func ReadDotenv(path string) ([]Use, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env, err := envfile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var uses []Use
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		uses = append(uses, Use{File: path, Workload: "dotenv", Var: name, Value: value})
	}
	return withContext(uses), nil
}

// ReadYAML reads the variables of a multi-document YAML stream: Kubernetes
// objects (the workload kinds, and List) and docker compose files. Other
// documents are skipped.
func ReadYAML(file string, data []byte) ([]Use, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var uses []Use
	for n := 1; ; n++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return uses, nil
		}
		if err != nil {
			// yaml's errors quote at most a line number and a token.
			return nil, fmt.Errorf("%s: document %d: %w", file, n, err)
		}
		m, ok := doc.(map[string]any)
		if !ok {
			continue
		}
		u, err := readObject(file, m)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, n, err)
		}
		uses = append(uses, u...)
	}
}

func readObject(file string, obj map[string]any) ([]Use, error) {
	kind, _ := obj["kind"].(string)
	if kind == "" {
		if services, ok := obj["services"].(map[string]any); ok {
			return readCompose(file, services)
		}
		return nil, nil
	}
	if kind == "List" || strings.HasSuffix(kind, "List") {
		items, _ := obj["items"].([]any)
		var uses []Use
		for _, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			u, err := readObject(file, m)
			if err != nil {
				return nil, err
			}
			uses = append(uses, u...)
		}
		return uses, nil
	}
	path, ok := workloadKinds[kind]
	if !ok {
		return nil, nil
	}
	name, _ := dig(obj, "metadata", "name").(string)
	ns, _ := dig(obj, "metadata", "namespace").(string)
	if ns == "" {
		ns = "default"
	}
	if name == "" {
		return nil, fmt.Errorf("%s has no metadata.name", kind)
	}
	workload := kind + "/" + ns + "/" + name
	spec, _ := dig(obj, path...).(map[string]any)
	if spec == nil {
		return nil, nil
	}
	sa, _ := spec["serviceAccountName"].(string)
	if sa == "" {
		sa, _ = spec["serviceAccount"].(string) // deprecated alias
	}
	if sa == "" {
		sa = "default"
	}
	var uses []Use
	for _, field := range []string{"initContainers", "containers"} {
		list, _ := spec[field].([]any)
		for _, c := range list {
			cm, _ := c.(map[string]any)
			cname, _ := cm["name"].(string)
			env, _ := cm["env"].([]any)
			var cuses []Use
			for _, e := range env {
				em, _ := e.(map[string]any)
				vname, _ := em["name"].(string)
				value, isString := em["value"].(string)
				if vname == "" || !isString {
					continue // valueFrom, or a value that is no reference
				}
				cuses = append(cuses, Use{File: file, Workload: workload, Container: cname,
					ServiceAccount: ns + "/" + sa, Var: vname, Value: value})
			}
			uses = append(uses, withContext(cuses)...)
		}
	}
	return uses, nil
}

// readCompose reads services.*.environment, as a map or a NAME=VALUE list.
func readCompose(file string, services map[string]any) ([]Use, error) {
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	var uses []Use
	for _, svc := range names {
		m, _ := services[svc].(map[string]any)
		var suses []Use
		add := func(name, value string) {
			suses = append(suses, Use{File: file, Workload: "compose/" + svc, Var: name, Value: value})
		}
		switch env := m["environment"].(type) {
		case map[string]any:
			for name, v := range env {
				if s, ok := v.(string); ok {
					add(name, s)
				}
			}
		case []any:
			for _, e := range env {
				s, _ := e.(string)
				if name, value, ok := strings.Cut(s, "="); ok {
					add(name, value)
				}
			}
		}
		uses = append(uses, withContext(suses)...)
	}
	return uses, nil
}

// dig follows map keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
