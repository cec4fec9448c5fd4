package azure

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/secrets-init/secrets-init/provider"
)

// Every message here is one line built from status codes, error codes and
// names: never from a response body as a whole, which might echo a value.

// credential marks the errors of the credential chain, so that a failed
// authentication can be told from Key Vault's own answers.
type credential struct{ azcore.TokenCredential }

// GetToken implements azcore.TokenCredential.
func (c credential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	t, err := c.TokenCredential.GetToken(ctx, o)
	if err != nil {
		err = &credError{err}
	}
	return t, err
}

type credError struct{ err error }

func (e *credError) Error() string { return e.err.Error() }
func (e *credError) Unwrap() error { return e.err }

// shouldRetry retries throttling, server faults and transport errors,
// except those that no retry mends: an unknown host, a certificate that
// does not verify.
func shouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		var dns *net.DNSError
		var cert *tls.CertificateVerificationError
		return !(errors.As(err, &dns) && dns.IsNotFound) && !errors.As(err, &cert)
	}
	return runtime.HasStatusCode(resp, http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout)
}

// describe turns GetSecret's error into the reason a user can act on. raw
// is the last response the call saw, if any.
func describe(ctx context.Context, err error, raw *http.Response, vault, version string) error {
	var (
		ce *credError
		re *azcore.ResponseError
		ue *url.Error
	)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ce):
		return credentialError(ce.err)
	case errors.As(err, &re):
		return responseError(re, vault, version)
	case errors.As(err, &ue):
		var dns *net.DNSError
		if errors.As(err, &dns) && dns.IsNotFound {
			return fmt.Errorf("vault host %s not found (check the vault name)", dns.Name)
		}
		return fmt.Errorf("cannot reach %s: %s", vault, firstLine(ue.Err.Error()))
	case raw != nil && raw.StatusCode == http.StatusOK:
		// The body did not decode as a secret; its parse error may quote it.
		return fmt.Errorf("%s answered with something that is not a Key Vault secret", vault)
	case raw != nil && raw.StatusCode == http.StatusUnauthorized:
		// The challenge was unusable, e.g. for a resource outside the vault's domain.
		return fmt.Errorf("%s sent an authentication challenge that does not fit a Key Vault at that address; no token was sent", vault)
	}
	return fmt.Errorf("%s: %s", vault, firstLine(err.Error()))
}

func responseError(re *azcore.ResponseError, vault, version string) error {
	switch re.StatusCode {
	case http.StatusNotFound:
		if version != "" {
			return fmt.Errorf("%w in %s (no such secret, or no version %s)", provider.ErrNotFound, vault, version)
		}
		return fmt.Errorf("%w in %s", provider.ErrNotFound, vault)
	case http.StatusForbidden:
		switch inner := innerCode(re.RawResponse); inner {
		case "SecretDisabled":
			if version != "" {
				return errors.New("this version of the secret is disabled")
			}
			return errors.New("the secret is disabled (enable it, or name an enabled version)")
		case "ForbiddenByFirewall":
			return fmt.Errorf("access denied by the network rules of %s (firewall or private endpoint)", vault)
		default:
			if inner != "" {
				inner = " [" + inner + "]"
			}
			return fmt.Errorf(`access denied: the identity needs the "Get" secret permission (access policy) or the "Key Vault Secrets User" role (Azure RBAC) on %s%s`, vault, inner)
		}
	case http.StatusUnauthorized:
		return fmt.Errorf("unauthorized: %s rejected the token (is the identity in the vault's tenant?)", vault)
	case http.StatusTooManyRequests:
		return fmt.Errorf("throttled by %s (HTTP 429)", vault)
	}
	return fmt.Errorf("%s answered HTTP %d %s", vault, re.StatusCode, re.ErrorCode)
}

// innerCode returns error.innererror.code of a Key Vault error response.
func innerCode(resp *http.Response) string {
	var body struct {
		Error struct {
			Inner struct{ Code string } `json:"innererror"`
		}
	}
	if resp == nil {
		return ""
	}
	b, err := runtime.Payload(resp)
	if err != nil || json.Unmarshal(b, &body) != nil {
		return ""
	}
	return body.Error.Inner.Code
}

// credentialError summarises DefaultAzureCredential's many-line error.
func credentialError(err error) error {
	tried, details := attempts(err.Error())
	var af *azidentity.AuthenticationFailedError
	if !errors.As(err, &af) {
		if len(tried) == 0 {
			return fmt.Errorf("no Azure credential: %s", firstLine(err.Error()))
		}
		return fmt.Errorf("no Azure credential found (tried %s)", strings.Join(tried, ", "))
	}
	who, detail := "the credential", firstLine(err.Error())
	if n := len(tried); n > 0 {
		who, detail = tried[n-1], details[n-1]
	}
	if res := af.RawResponse; res != nil {
		host := ""
		if res.Request != nil {
			host = " by " + res.Request.URL.Host
		}
		return fmt.Errorf("Azure authentication failed: %s was refused%s (HTTP %d%s)", who, host, res.StatusCode, entraError(res))
	}
	return fmt.Errorf("Azure authentication failed: %s %s", who, detail)
}

// attempts reads the lines "\tNAME: detail" or "\tNAME detail" of a
// credential chain's error: the credentials tried and the first sentence
// of what each said.
func attempts(msg string) (names, details []string) {
	for _, l := range strings.Split(msg, "\n") {
		l, ok := strings.CutPrefix(l, "\t")
		if !ok || strings.HasPrefix(l, "\t") {
			continue
		}
		end := strings.IndexFunc(l, func(r rune) bool { return !unicode.IsLetter(r) })
		if end <= 0 {
			continue
		}
		detail := strings.TrimSpace(strings.TrimPrefix(l[end:], ":"))
		detail, _, _ = strings.Cut(detail, ". ")
		names, details = append(names, l[:end]), append(details, strings.TrimSuffix(detail, "."))
	}
	return names, details
}

// entraError returns ": error, first sentence of error_description" of an
// Entra ID error response, or "".
func entraError(resp *http.Response) string {
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	b, err := runtime.Payload(resp)
	if err != nil || json.Unmarshal(b, &body) != nil || body.Error == "" {
		return ""
	}
	desc, _, _ := strings.Cut(firstLine(body.Description), ". ")
	return ": " + body.Error + ", " + strings.TrimSuffix(desc, ".")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}
