package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/secrets-init/secrets-init/provider"
)

var errNoRegion = errors.New("no AWS region for a short reference: set AWS_REGION (or a profile's region), or use the full ARN")

// credentialSources are the sources the SDK's default chain tries, in order.
const credentialSources = "env AWS_ACCESS_KEY_ID, shared config/credentials profile, web identity (IRSA), EKS Pod Identity, ECS task role, EC2 IMDS"

// checkCredentials retrieves the credentials once (the SDK caches them for
// every client), so that a missing or broken source is one clear error
// instead of one per call.
func (e *env) checkCredentials(ctx context.Context) error {
	if _, err := e.cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The chain ends at IMDS when no other source is configured.
		var oe *smithy.OperationError
		if errors.As(err, &oe) && oe.ServiceID == "ec2imds" {
			return fmt.Errorf("no AWS credentials (tried: %s; IMDS said: %s)", credentialSources, oneLine(oe.Err.Error()))
		}
		return fmt.Errorf("cannot get AWS credentials: %s", oneLine(err.Error()))
	}
	return nil
}

// reason turns the error of a call into one a user can act on. action is
// the IAM action that the call needs, region where it went. The result
// never holds a byte of a response body.
func reason(ctx context.Context, err error, action, region string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return apiReason(ae.ErrorCode(), ae.ErrorMessage(), action, region)
	}
	var de *smithy.DeserializationError
	if errors.As(err, &de) {
		return fmt.Errorf("the answer from AWS in %s could not be read", region)
	}
	return errors.New(oneLine(err.Error()))
}

// apiReason explains an AWS error code, as a call or a batch entry gives it.
func apiReason(code, msg, action, region string) error {
	switch code {
	case "ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound", "ParameterVersionLabelNotFound":
		return fmt.Errorf("%w in %s", provider.ErrNotFound, region)
	case "AccessDeniedException", "AccessDenied":
		if mentionsKMS(msg) {
			return errors.New("access denied by KMS: the role needs kms:Decrypt on the key that encrypts it")
		}
		return fmt.Errorf("access denied: the role needs %s on it", action)
	case "DecryptionFailure", "InvalidKeyId", "KMSAccessDeniedException":
		return fmt.Errorf("cannot decrypt it: the role needs kms:Decrypt on its KMS key (%s: %s)", code, oneLine(msg))
	case "ExpiredTokenException", "ExpiredToken", "RequestExpired":
		return errors.New("the AWS credentials have expired: renew the session (e.g. aws sso login, or the role's token)")
	case "UnrecognizedClientException", "InvalidClientTokenId":
		return errors.New("AWS does not recognise the access key or session token: check the credentials")
	case "InvalidSignatureException", "SignatureDoesNotMatch":
		return errors.New("AWS rejected the request signature: check AWS_SECRET_ACCESS_KEY")
	}
	return fmt.Errorf("%s in %s: %s", code, region, oneLine(msg))
}

// mentionsKMS tells whether an access-denied message is about KMS. It
// looks for phrases that names and ARNs of secrets and roles cannot hold.
func mentionsKMS(msg string) bool {
	for _, s := range []string{"kms:", "Access to KMS", "KMS key", "customer master key"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// isAccessDenied tells whether a whole call was refused (by IAM or KMS).
func isAccessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "AccessDeniedException" || ae.ErrorCode() == "AccessDenied")
}

// isUnsupported reports whether err says the endpoint does not know the
// operation: an emulator or an older service that serves GetSecretValue but
// not BatchGetSecretValue.
func isUnsupported(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "UnknownOperationException", "InvalidAction", "NotImplemented", "UnsupportedOperation":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == 404 || re.HTTPStatusCode() == 501)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
