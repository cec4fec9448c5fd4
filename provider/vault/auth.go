package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
)

// serviceAccountToken is where Kubernetes mounts a pod's service-account
// token: its presence makes kubernetes the default auth method.
const serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// A login gets the token that reads are made with.
type login interface {
	// token returns the token and, for a login, its TTL (0: unknown or
	// none).
	token(ctx context.Context, c *api.Client) (string, time.Duration, error)
}

// fixedToken is a token given by VAULT_TOKEN or a token file.
type fixedToken string

func (t fixedToken) token(context.Context, *api.Client) (string, time.Duration, error) {
	return string(t), 0, nil
}

// methodLogin logs in with an auth method mounted at auth/mount.
type methodLogin struct {
	name, mount string
	method      api.AuthMethod
}

// token logs in, retrying transient failures until ctx ends.
func (l methodLogin) token(ctx context.Context, c *api.Client) (string, time.Duration, error) {
	var secret *api.Secret
	err := retry(ctx, func() (err error) {
		secret, err = l.method.Login(ctx, c)
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("vault login with %s at auth/%s failed: %w", l.name, l.mount, describeLogin(c, err))
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return "", 0, fmt.Errorf("vault login with %s at auth/%s returned no token", l.name, l.mount)
	}
	return secret.Auth.ClientToken, time.Duration(secret.Auth.LeaseDuration) * time.Second, nil
}

// inputError is a failure to gather a login's inputs (a file, a cloud
// identity), not a failure to talk to Vault.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

// loginFunc adapts a function to api.AuthMethod.
type loginFunc func(ctx context.Context, c *api.Client) (*api.Secret, error)

func (f loginFunc) Login(ctx context.Context, c *api.Client) (*api.Secret, error) { return f(ctx, c) }

// writeLogin is an auth method that logs in by writing data to
// auth/MOUNT/login; data is called at each attempt, so files are re-read.
func writeLogin(mount string, data func(ctx context.Context) (map[string]any, error)) api.AuthMethod {
	return loginFunc(func(ctx context.Context, c *api.Client) (*api.Secret, error) {
		d, err := data(ctx)
		if err != nil {
			return nil, inputError{err}
		}
		return c.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", d)
	})
}

// authFromEnv selects how to get a token from vault-env's variables:
// VAULT_AUTH_METHOD if set; otherwise a token from VAULT_TOKEN or
// VAULT_TOKEN_FILE, approle when VAULT_ROLE_ID is set, ~/.vault-token,
// and finally kubernetes inside a pod.
func authFromEnv() (login, error) {
	method := strings.ToLower(strings.TrimSpace(os.Getenv("VAULT_AUTH_METHOD")))
	if method == "" {
		method = defaultMethod()
	}
	switch method {
	case "token":
		return tokenFromEnv()
	case "":
		return nil, errors.New("no Vault credentials: set VAULT_TOKEN, VAULT_TOKEN_FILE or VAULT_AUTH_METHOD (there is no ~/.vault-token and no Kubernetes service-account token)")
	}
	spec, ok := authMethods[method]
	if !ok {
		return nil, fmt.Errorf("unknown VAULT_AUTH_METHOD %q (known: token, kubernetes, approle, jwt, aws-iam, gcp-iam, gcp-gce, azure)", method)
	}
	role := os.Getenv("VAULT_ROLE")
	if spec.needsRole && role == "" {
		return nil, fmt.Errorf("the %s login needs VAULT_ROLE (the Vault role to log in as)", method)
	}
	mount := strings.Trim(strings.TrimPrefix(strings.Trim(os.Getenv("VAULT_PATH"), "/"), "auth/"), "/")
	if mount == "" {
		mount = spec.mount
	}
	var m api.AuthMethod
	switch method {
	case "approle":
		a, err := appRole(mount)
		if err != nil {
			return nil, err
		}
		m = a
	case "kubernetes":
		m = loginFunc(func(ctx context.Context, c *api.Client) (*api.Secret, error) {
			jwt, err := jwtFromEnv()
			if err != nil {
				return nil, inputError{err}
			}
			k, err := kubernetes.NewKubernetesAuth(role, kubernetes.WithMountPath(mount), kubernetes.WithServiceAccountToken(jwt))
			if err != nil {
				return nil, err
			}
			return k.Login(ctx, c)
		})
	case "jwt":
		m = writeLogin(mount, func(context.Context) (map[string]any, error) {
			jwt, err := jwtFromEnv()
			return map[string]any{"role": role, "jwt": jwt}, err
		})
	default:
		data := cloudLogins[method]
		m = writeLogin(mount, func(ctx context.Context) (map[string]any, error) { return data(ctx, role) })
	}
	return methodLogin{name: method, mount: mount, method: m}, nil
}

// cloudLogins make the login data of the cloud auth methods for a role.
var cloudLogins = map[string]func(ctx context.Context, role string) (map[string]any, error){
	"aws-iam": awsIAMLogin, "gcp-gce": gcpGCELogin, "gcp-iam": gcpIAMLogin, "azure": azureLogin,
}

// authMethods are the VAULT_AUTH_METHOD values that log in: their default
// auth mount (VAULT_PATH overrides it) and whether they need VAULT_ROLE.
var authMethods = map[string]struct {
	mount     string
	needsRole bool
}{
	"kubernetes": {"kubernetes", true},
	"approle":    {"approle", false},
	"jwt":        {"jwt", true},
	"aws-iam":    {"aws", false}, // Vault defaults the role to the IAM role's name
	"gcp-iam":    {"gcp", true},
	"gcp-gce":    {"gcp", true},
	"azure":      {"azure", true},
}

// defaultMethod picks the auth method when VAULT_AUTH_METHOD is not set
// ("" when there is nothing to log in with).
func defaultMethod() string {
	switch {
	case os.Getenv("VAULT_TOKEN") != "", os.Getenv("VAULT_TOKEN_FILE") != "":
		return "token"
	case os.Getenv("VAULT_ROLE_ID") != "", os.Getenv("VAULT_ROLE_ID_FILE") != "":
		return "approle"
	case exists(homeTokenFile()):
		return "token"
	case exists(serviceAccountToken):
		return "kubernetes"
	}
	return ""
}

// tokenFromEnv reads VAULT_TOKEN, else VAULT_TOKEN_FILE, else ~/.vault-token.
func tokenFromEnv() (login, error) {
	if t := strings.TrimSpace(os.Getenv("VAULT_TOKEN")); t != "" {
		return fixedToken(t), nil
	}
	file, name := os.Getenv("VAULT_TOKEN_FILE"), "VAULT_TOKEN_FILE"
	if file == "" {
		file, name = homeTokenFile(), "~/.vault-token"
	}
	t, err := readInput(name, file)
	if err != nil {
		return nil, fmt.Errorf("no Vault token: VAULT_TOKEN is not set and %w", err)
	}
	return fixedToken(t), nil
}

// appRole configures an approle login from VAULT_ROLE_ID[_FILE] and
// VAULT_SECRET_ID[_FILE].
func appRole(mount string) (api.AuthMethod, error) {
	roleID, err := valueOrFile("VAULT_ROLE_ID")
	if err != nil {
		return nil, err
	}
	var secretID approle.SecretID
	switch {
	case os.Getenv("VAULT_SECRET_ID") != "":
		secretID.FromString = os.Getenv("VAULT_SECRET_ID")
	case os.Getenv("VAULT_SECRET_ID_FILE") != "":
		secretID.FromFile = os.Getenv("VAULT_SECRET_ID_FILE")
	default:
		return nil, errors.New("VAULT_AUTH_METHOD=approle needs VAULT_SECRET_ID or VAULT_SECRET_ID_FILE")
	}
	return approle.NewAppRoleAuth(roleID, &secretID, approle.WithMountPath(mount))
}

// jwtFromEnv reads the JWT for a kubernetes or jwt login: VAULT_JWT,
// else the file VAULT_JWT_FILE, else the pod's service-account token.
func jwtFromEnv() (string, error) {
	if os.Getenv("VAULT_JWT") != "" {
		return strings.TrimSpace(os.Getenv("VAULT_JWT")), nil
	}
	if f := os.Getenv("VAULT_JWT_FILE"); f != "" {
		return readInput("VAULT_JWT_FILE", f)
	}
	return readInput("the service-account token", serviceAccountToken)
}

// valueOrFile reads the variable name, else the file named by name_FILE.
func valueOrFile(name string) (string, error) {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v, nil
	}
	if f := os.Getenv(name + "_FILE"); f != "" {
		return readInput(name+"_FILE", f)
	}
	return "", fmt.Errorf("%s or %s_FILE is needed", name, name)
}

// readInput reads a credential file, trimmed. Errors name the file, never
// its contents.
func readInput(what, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cannot read %s (%s): %v", what, file, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s (%s) is empty", what, file)
	}
	return s, nil
}

func homeTokenFile() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".vault-token")
}

func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

// envBool reads a boolean variable (unset: false).
func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q is not a boolean (want true or false)", name, v)
	}
	return b, nil
}
