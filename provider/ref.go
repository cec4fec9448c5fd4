package provider

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Kind names a secret store.
type Kind uint8

// The stores, in the order the README lists them.
const (
	SecretsManager Kind = iota + 1 // AWS Secrets Manager
	SSM                            // AWS SSM Parameter Store
	Google                         // Google Secret Manager
	Vault                          // HashiCorp Vault / OpenBao
	Azure                          // Azure Key Vault
	File                           // a local file (secretfile:)
	JWE                            // a JWE in the value itself, decrypted with a KMS key (jwe:)
)

var kindNames = [...]string{"", "aws-secretsmanager", "aws-ssm", "gcp-secretmanager", "vault", "azure-keyvault", "secretfile", "jwe"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// tag is the build tag that leaves the store out.
func (k Kind) tag() string {
	switch k {
	case SecretsManager, SSM:
		return "aws"
	case Google:
		return "gcp"
	case Azure:
		return "azure"
	}
	return k.String()
}

// Kinds lists every Kind.
var Kinds = []Kind{SecretsManager, SSM, Google, Vault, Azure, File, JWE}

// A Target names one value in one store. Targets are comparable: equal
// targets are fetched once, whatever number of variables name them.
type Target struct {
	Kind Kind
	// AWS: the partition and region of an ARN; both empty for the short
	// forms, whose region comes from the environment.
	Partition, Region string
	// Google: the project (empty: the default project) and the location of
	// a regional secret (empty: global).
	Project, Location string
	// Azure: the vault's URL, https://NAME.vault.azure.net (empty:
	// AZURE_KEY_VAULT_URL).
	Vault string
	// Name is the Secrets Manager SecretId (an ARN or a name), the SSM
	// parameter (an ARN or a name), the Google secret id, the Vault path,
	// the Azure secret name or the file's path.
	Name string
	// Version is the Secrets Manager version id, the SSM version or label,
	// the Google version (empty: latest), the Vault KV version or the Azure
	// secret version (empty: current).
	Version string
	// Stage is the Secrets Manager version stage (empty: AWSCURRENT).
	Stage string
	// KeyURI is the key=KEYURI option of a jwe: reference (empty: the
	// JWE's kid or SECRETS_INIT_JWE_KEY); for jwe:, Name is the JWE.
	KeyURI string
	// Body makes a Vault target a write (>>vault:PATH#KEY#JSON_BODY): the
	// JSON object sent, in canonical form ("{}" for a write without a
	// body); empty for a read. It may hold a secret: never shown.
	Body string
}

// Options are the ?options of a reference.
type Options struct {
	File     bool   // deliver the value in a file; the variable holds its path
	FilePath string // with File: where to write it (empty: a private directory)
	Optional bool   // a secret that does not exist leaves the variable unset
	Base64   bool   // encoding=base64: the stored value is base64
	Trim     bool   // strip one trailing newline
	Refresh  Action // refresh=: what a change does (ActDefault: the flags decide)
}

// A Ref is a parsed secret reference.
type Ref struct {
	Target
	Key  string // the JSON member to select; empty: the whole value
	Opts Options
}

// Prefixes of the reference forms (the ARN forms are recognised by their
// service field).
const (
	prefixSMShort   = "aws:secretsmanager:"
	prefixSSMShort  = "aws:ssm:"
	prefixGoogle    = "gcp:secretmanager:"
	prefixVault     = "vault:"
	prefixAzure     = "azure:keyvault:"
	prefixAppSvc    = "@Microsoft.KeyVault("
	prefixFile      = "secretfile:"
	prefixJWE       = "jwe:"
	azurePublicHost = ".vault.azure.net"
)

// Parse reads an environment value. It returns ok=false when the value is
// not a reference, and an error when it has a reference's prefix but a
// shape that cannot be parsed. Errors never quote the value.
func Parse(value string) (ref Ref, ok bool, err error) {
	if rest, isWrite := strings.CutPrefix(value, prefixWrite); isWrite {
		ref, err = parseWrite(rest)
		if err != nil {
			return Ref{}, true, err
		}
		return ref, true, nil
	}
	kind, rest := classify(value)
	if kind == 0 {
		return Ref{}, false, nil
	}
	ref, err = parse(kind, value, rest)
	if err != nil {
		return Ref{}, true, err
	}
	return ref, true, nil
}

// classify finds the store of a value and what follows its prefix.
func classify(v string) (Kind, string) {
	switch {
	case strings.HasPrefix(v, "arn:"):
		f := strings.SplitN(v, ":", 4)
		if len(f) == 4 && strings.HasPrefix(f[1], "aws") {
			switch f[2] {
			case "secretsmanager":
				return SecretsManager, v
			case "ssm":
				return SSM, v
			}
		}
		return 0, ""
	case strings.HasPrefix(v, prefixSMShort):
		return SecretsManager, v[len(prefixSMShort):]
	case strings.HasPrefix(v, prefixSSMShort):
		return SSM, v[len(prefixSSMShort):]
	case strings.HasPrefix(v, prefixGoogle):
		return Google, v[len(prefixGoogle):]
	case strings.HasPrefix(v, prefixVault):
		return Vault, v[len(prefixVault):]
	case strings.HasPrefix(v, prefixAzure), strings.HasPrefix(v, prefixAppSvc):
		return Azure, v
	case strings.HasPrefix(v, prefixFile):
		return File, v[len(prefixFile):]
	case strings.HasPrefix(v, prefixJWE):
		return JWE, v[len(prefixJWE):]
	}
	return 0, ""
}

func parse(kind Kind, value, rest string) (Ref, error) {
	var r Ref
	r.Kind = kind
	body, opts, hasOpts := strings.Cut(rest, "?")
	if kind == JWE {
		var err error
		if body, opts, hasOpts, err = splitJWE(rest); err != nil {
			return Ref{}, err
		}
	}
	if hasOpts {
		o, keyURI, err := parseOptions(opts)
		if err != nil {
			return Ref{}, err
		}
		if keyURI != "" && kind != JWE {
			return Ref{}, errors.New("option key= is for jwe: references only")
		}
		r.Opts, r.KeyURI = o, keyURI
	}
	var err error
	switch kind {
	case SecretsManager:
		err = r.parseSecretsManager(body, value != rest)
	case SSM:
		err = r.parseSSM(body, value != rest)
	case Google:
		err = r.parseGoogle(body)
	case Vault:
		err = r.parseVault(body)
	case Azure:
		err = r.parseAzure(body)
	case File:
		err = r.parseFile(body)
	case JWE:
		err = r.parseJWE(body)
	}
	if err != nil {
		return Ref{}, err
	}
	return r, nil
}

// parseOptions reads the options, and key=KEYURI (percent-decoded).
func parseOptions(s string) (Options, string, error) {
	var o Options
	var keyURI string
	seen := map[string]bool{}
	for _, opt := range strings.Split(s, "&") {
		name, arg, hasArg := strings.Cut(opt, "=")
		if seen[name] {
			return Options{}, "", fmt.Errorf("option %q is given twice", name)
		}
		seen[name] = true
		switch {
		case name == "file" && !hasArg:
			o.File = true
		case name == "file":
			if arg == "" {
				return Options{}, "", errors.New("option file= needs a path")
			}
			o.File, o.FilePath = true, arg
		case name == "optional" && !hasArg:
			o.Optional = true
		case name == "trim" && !hasArg:
			o.Trim = true
		case name == "encoding":
			if arg != "base64" {
				return Options{}, "", fmt.Errorf("unknown encoding %q (want encoding=base64)", arg)
			}
			o.Base64 = true
		case name == "key":
			k, err := unescapeKeyURI(arg)
			if err != nil {
				return Options{}, "", err
			}
			keyURI = k
		case name == "refresh" && hasArg:
			a, err := ParseAction(arg, true, true)
			if err != nil {
				return Options{}, "", fmt.Errorf("option refresh=: %w", err)
			}
			o.Refresh = a
		case name == "refresh":
			return Options{}, "", errors.New("option refresh needs a value: refresh=restart, a signal, none or off")
		case name == "optional" || name == "trim":
			return Options{}, "", fmt.Errorf("option %q takes no value", name)
		case name == "":
			return Options{}, "", errors.New("empty option")
		default:
			return Options{}, "", fmt.Errorf("unknown option %q (known: file, file=PATH, optional, encoding=base64, trim, refresh=ACTION, and key=KEYURI for jwe:)", name)
		}
	}
	if o.Refresh.Kind == ActSignal && !o.File {
		return Options{}, "", ErrSignalNeedsFile
	}
	return o, keyURI, nil
}

// cutKey splits a trailing #KEY off a body.
func cutKey(body string) (string, string) {
	b, key, _ := strings.Cut(body, "#")
	return b, key
}

func (r *Ref) parseSecretsManager(body string, short bool) error {
	var f []string
	if short {
		f = strings.Split(body, ":")
		r.Name, f = f[0], f[1:]
		if err := checkName("secret name", r.Name, isSecretsManagerChar); err != nil {
			return err
		}
	} else {
		all := strings.Split(body, ":")
		if len(all) < 7 || all[5] != "secret" {
			return errors.New("a Secrets Manager ARN has the form arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME[:JSON_KEY[:VERSION_STAGE[:VERSION_ID]]]")
		}
		if err := r.parseARNHead(all); err != nil {
			return err
		}
		if err := checkName("secret name", all[6], isSecretsManagerChar); err != nil {
			return err
		}
		r.Name, f = strings.Join(all[:7], ":"), all[7:]
	}
	if len(f) > 3 {
		return errors.New("too many fields after the secret name (want NAME[:JSON_KEY[:VERSION_STAGE[:VERSION_ID]]])")
	}
	f = append(f, "", "", "")
	r.Key, r.Stage, r.Version = f[0], f[1], f[2]
	if r.Stage != "" && r.Version != "" {
		return errors.New("give a version stage or a version id, not both")
	}
	if err := checkName("version stage", r.Stage, isSecretsManagerChar); r.Stage != "" && err != nil {
		return err
	}
	if err := checkName("version id", r.Version, isIDChar); r.Version != "" && err != nil {
		return err
	}
	return nil
}

// parseARNHead checks and records the partition and region of an ARN split at ':'.
func (r *Ref) parseARNHead(f []string) error {
	if !validPartition(f[1]) {
		return fmt.Errorf("unknown AWS partition %q", f[1])
	}
	if f[3] == "" || !allOf(f[3], isRegionChar) {
		return errors.New("the ARN has no valid region")
	}
	if f[4] == "" || !allOf(f[4], isDigit) {
		return errors.New("the ARN has no valid account id")
	}
	r.Partition, r.Region = f[1], f[3]
	return nil
}

func validPartition(p string) bool {
	rest, ok := strings.CutPrefix(p, "aws")
	if !ok {
		return false
	}
	for rest != "" {
		var part string
		rest, ok = strings.CutPrefix(rest, "-")
		if !ok {
			return false
		}
		part, rest, _ = strings.Cut(rest, "-")
		if part == "" || !allOf(part, isLower) {
			return false
		}
		if rest != "" {
			rest = "-" + rest
		}
	}
	return true
}

func (r *Ref) parseSSM(body string, short bool) error {
	body, r.Key = cutKey(body)
	f := strings.Split(body, ":")
	var name string
	if short {
		name, f = f[0], f[1:]
		r.Name = name
	} else {
		if len(f) < 6 || !strings.HasPrefix(f[5], "parameter/") {
			return errors.New("an SSM parameter ARN has the form arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME[:VERSION_OR_LABEL]")
		}
		if err := r.parseARNHead(f); err != nil {
			return err
		}
		name = strings.TrimPrefix(f[5], "parameter")
		if name == "/" {
			return errors.New("empty parameter name")
		}
		r.Name, f = strings.Join(f[:6], ":"), f[6:]
	}
	if err := checkName("parameter name", name, isSSMChar); err != nil {
		return err
	}
	switch {
	case len(f) > 1:
		return errors.New("too many ':' fields after the parameter name (want NAME[:VERSION_OR_LABEL])")
	case len(f) == 1:
		if err := checkName("parameter version or label", f[0], isSSMLabelChar); err != nil {
			return err
		}
		r.Version = f[0]
	}
	return nil
}

func (r *Ref) parseGoogle(body string) error {
	body, r.Key = cutKey(body)
	const form = "want projects/P/secrets/S[/versions/V], projects/P/locations/L/secrets/S[/versions/V] or S[/versions/V]"
	f := strings.Split(body, "/")
	if f[0] == "projects" {
		if len(f) < 4 || f[1] == "" {
			return errors.New(form)
		}
		r.Project, f = f[1], f[2:]
		if !allOf(r.Project, isProjectChar) {
			return fmt.Errorf("invalid project %q", r.Project)
		}
		if f[0] == "locations" {
			if len(f) < 4 || f[1] == "" || !allOf(f[1], isRegionChar) {
				return errors.New(form)
			}
			r.Location, f = f[1], f[2:]
		}
		if f[0] != "secrets" {
			return errors.New(form)
		}
		f = f[1:]
	}
	r.Name, f = f[0], f[1:]
	if err := checkName("secret id", r.Name, isIDChar); err != nil {
		return err
	}
	switch {
	case len(f) == 0:
	case len(f) == 2 && f[0] == "versions":
		if err := checkName("version", f[1], isIDChar); err != nil {
			return err
		}
		r.Version = f[1]
	default:
		return errors.New(form)
	}
	return nil
}

func (r *Ref) parseVault(body string) error {
	f := strings.Split(body, "#")
	if len(f) > 3 {
		return errors.New("too many '#' (want vault:PATH[#KEY[#VERSION]])")
	}
	f = append(f, "", "")
	path := strings.Trim(f[0], "/")
	if path == "" || strings.Contains(path, "//") || !allOf(path, isPrintable) {
		return errors.New("invalid Vault path (want vault:PATH[#KEY[#VERSION]])")
	}
	if f[2] != "" && (!allOf(f[2], isDigit) || f[2][0] == '0') {
		return fmt.Errorf("vault version %q is not a positive number", f[2])
	}
	r.Name, r.Key, r.Version = path, f[1], f[2]
	return nil
}

func (r *Ref) parseAzure(body string) error {
	if s, ok := strings.CutPrefix(body, prefixAppSvc); ok {
		return r.parseAppService(s)
	}
	body, r.Key = cutKey(strings.TrimPrefix(body, prefixAzure))
	if strings.HasPrefix(body, "https://") {
		return r.parseAzureURL(body)
	}
	return r.parseAzureNameVersion(body)
}

// parseAzureNameVersion reads NAME[/VERSION].
func (r *Ref) parseAzureNameVersion(s string) error {
	name, version, _ := strings.Cut(strings.TrimSuffix(s, "/"), "/")
	if err := checkName("secret name", name, isAzureNameChar); err != nil {
		return err
	}
	if version != "" && !allOf(version, isAlnum) {
		return fmt.Errorf("invalid secret version %q", version)
	}
	r.Name, r.Version = name, version
	return nil
}

func (r *Ref) parseAzureURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return errors.New("invalid secret identifier (want https://VAULT.vault.azure.net/secrets/NAME[/VERSION])")
	}
	if !allOf(u.Host, isHostChar) {
		return fmt.Errorf("invalid vault host %q", u.Host)
	}
	rest, ok := strings.CutPrefix(u.Path, "/secrets/")
	if !ok || u.RawPath != "" {
		return errors.New("the secret identifier's path is not /secrets/NAME[/VERSION]")
	}
	r.Vault = "https://" + strings.ToLower(u.Host)
	return r.parseAzureNameVersion(rest)
}

// parseAppService reads the body of @Microsoft.KeyVault(...)[#KEY].
func (r *Ref) parseAppService(s string) error {
	inner, after, ok := strings.Cut(s, ")")
	if !ok {
		return errors.New("@Microsoft.KeyVault( has no closing ')'")
	}
	if after != "" {
		key, ok := strings.CutPrefix(after, "#")
		if !ok {
			return errors.New("unexpected text after @Microsoft.KeyVault(...)")
		}
		r.Key = key
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(inner, ";") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || v == "" || fields[k] != "" {
			return errors.New("@Microsoft.KeyVault(...) wants SecretUri=URL or VaultName=V;SecretName=N[;SecretVersion=X]")
		}
		fields[k] = strings.TrimSpace(v)
	}
	if uri, ok := fields["secreturi"]; ok {
		if len(fields) != 1 {
			return errors.New("SecretUri= cannot be combined with other fields")
		}
		return r.parseAzureURL(uri)
	}
	vault, name := fields["vaultname"], fields["secretname"]
	version := fields["secretversion"]
	if vault == "" || name == "" || len(fields) != 2+btoi(version != "") {
		return errors.New("@Microsoft.KeyVault(...) wants SecretUri=URL or VaultName=V;SecretName=N[;SecretVersion=X]")
	}
	if err := checkName("vault name", vault, isAzureNameChar); err != nil {
		return err
	}
	r.Vault = "https://" + strings.ToLower(vault) + azurePublicHost
	return r.parseAzureNameVersion(name + "/" + version)
}

func (r *Ref) parseFile(body string) error {
	path, key := cutKey(body)
	if path == "" || strings.IndexByte(path, 0) >= 0 {
		return errors.New("secretfile: needs a path (want secretfile:PATH[#KEY])")
	}
	r.Name, r.Key = path, key
	return nil
}

// String formats r in its canonical form; Parse(r.String()) gives r back.
func (r Ref) String() string {
	var b strings.Builder
	switch r.Kind {
	case SecretsManager:
		if r.Partition == "" {
			b.WriteString(prefixSMShort)
		}
		b.WriteString(r.Name)
		fields := []string{r.Key, r.Stage, r.Version}
		for len(fields) > 0 && fields[len(fields)-1] == "" {
			fields = fields[:len(fields)-1]
		}
		for _, f := range fields {
			b.WriteString(":" + f)
		}
	case SSM:
		if r.Partition == "" {
			b.WriteString(prefixSSMShort)
		}
		b.WriteString(r.Name)
		if r.Version != "" {
			b.WriteString(":" + r.Version)
		}
	case Google:
		b.WriteString(prefixGoogle)
		if r.Project != "" {
			b.WriteString("projects/" + r.Project + "/")
			if r.Location != "" {
				b.WriteString("locations/" + r.Location + "/")
			}
			b.WriteString("secrets/")
		}
		b.WriteString(r.Name)
		if r.Version != "" {
			b.WriteString("/versions/" + r.Version)
		}
	case Vault:
		if r.IsWrite() {
			b.WriteString(r.writeString(r.Body))
			break
		}
		b.WriteString(prefixVault + r.Name)
		if r.Key != "" || r.Version != "" {
			b.WriteString("#" + r.Key)
		}
		if r.Version != "" {
			b.WriteString("#" + r.Version)
		}
	case Azure:
		b.WriteString(prefixAzure)
		if r.Vault != "" {
			b.WriteString(r.Vault + "/secrets/")
		}
		b.WriteString(r.Name)
		if r.Version != "" {
			b.WriteString("/" + r.Version)
		}
	case File:
		b.WriteString(prefixFile + r.Name)
	case JWE:
		b.WriteString(prefixJWE + r.Name)
	}
	if r.Key != "" && r.Kind != SecretsManager && r.Kind != Vault {
		b.WriteString("#" + r.Key)
	}
	var opts []string
	switch {
	case r.Opts.FilePath != "":
		opts = append(opts, "file="+r.Opts.FilePath)
	case r.Opts.File:
		opts = append(opts, "file")
	}
	if r.Opts.Optional {
		opts = append(opts, "optional")
	}
	if r.Opts.Base64 {
		opts = append(opts, "encoding=base64")
	}
	if r.Opts.Trim {
		opts = append(opts, "trim")
	}
	if r.KeyURI != "" {
		opts = append(opts, "key="+escapeKeyURI(r.KeyURI))
	}
	if r.Opts.Refresh.Kind != ActDefault {
		opts = append(opts, "refresh="+r.Opts.Refresh.String())
	}
	if len(opts) > 0 {
		b.WriteString("?" + strings.Join(opts, "&"))
	}
	return b.String()
}

func checkName(what, s string, ok func(rune) bool) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if !allOf(s, ok) {
		return fmt.Errorf("invalid character in %s %q", what, s)
	}
	return nil
}

func allOf(s string, ok func(rune) bool) bool {
	for _, c := range s {
		if !ok(c) {
			return false
		}
	}
	return true
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isDigit(c rune) bool { return '0' <= c && c <= '9' }
func isLower(c rune) bool { return 'a' <= c && c <= 'z' }
func isAlnum(c rune) bool {
	return isDigit(c) || isLower(c) || 'A' <= c && c <= 'Z'
}
func isRegionChar(c rune) bool    { return isDigit(c) || isLower(c) || c == '-' }
func isIDChar(c rune) bool        { return isAlnum(c) || c == '-' || c == '_' }
func isAzureNameChar(c rune) bool { return isAlnum(c) || c == '-' }
func isSSMChar(c rune) bool       { return isAlnum(c) || strings.ContainsRune("_.-/", c) }
func isSSMLabelChar(c rune) bool  { return isAlnum(c) || strings.ContainsRune("_.-", c) }
func isProjectChar(c rune) bool   { return isDigit(c) || isLower(c) || strings.ContainsRune("-.:", c) }
func isHostChar(c rune) bool      { return isAlnum(c) || strings.ContainsRune("-.:[]", c) }
func isPrintable(c rune) bool     { return c > ' ' && c != 0x7f && c != '?' }
func isSecretsManagerChar(c rune) bool {
	return isAlnum(c) || strings.ContainsRune("/_+=.@-", c)
}

// Pinned reports whether t names a version that cannot change: refresh
// never checks it. This is the one place that decides it. A Secrets
// Manager version id, a numeric SSM version, a numeric Google version, a
// Vault KV version and an Azure version are pinned; stages, labels and
// aliases (AWSPREVIOUS, an SSM label, Google's latest) move, and a
// secretfile: has no versions at all. A jwe: value is its own
// ciphertext, in the environment: it cannot change. A Vault write
// (>>vault:) is never pinned: it is issued again as its lease or
// certificate nears its end.
func (t Target) Pinned() bool {
	switch t.Kind {
	case JWE:
		return true
	case Vault:
		return t.Version != "" && !t.IsWrite() // a write issues anew: never pinned
	case SecretsManager, Azure:
		return t.Version != ""
	case SSM, Google:
		return t.Version != "" && allOf(t.Version, isDigit)
	}
	return false
}
