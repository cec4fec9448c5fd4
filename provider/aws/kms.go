package aws

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// KMS unwraps the content keys of jwe: references with AWS KMS asymmetric
// keys (aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID): Decrypt with
// RSAES_OAEP_SHA_256 (or _SHA_1 for RSA-OAEP). It shares the SDK
// configuration, transport and retry policy of the other AWS stores;
// AWS_ENDPOINT_URL_KMS or AWS_ENDPOINT_URL points it at an emulator.
type KMS struct {
	env     *env
	clients *regionClients[kms.Client]
}

// OpenKMS opens the aws-kms key scheme.
func OpenKMS(_ context.Context, s provider.Settings) (*KMS, error) {
	e, err := processEnv(s)
	if err != nil {
		return nil, err
	}
	return &KMS{env: e, clients: newRegionClients(func(region string) *kms.Client {
		return kms.NewFromConfig(e.cfg, func(o *kms.Options) { o.Region = region })
	})}, nil
}

// Close closes the idle connections of the KMS clients.
func (k *KMS) Close() { k.env.tr.CloseIdleConnections() }

// kmsKey parses aws-kms://ARN: the key's ARN and region.
func kmsKey(keyURI string) (arn, region string, err error) {
	arn, _ = strings.CutPrefix(keyURI, "aws-kms://")
	f := strings.SplitN(arn, ":", 6)
	if len(f) != 6 || f[0] != "arn" || !strings.HasPrefix(f[1], "aws") || f[2] != "kms" || f[3] == "" || f[4] == "" ||
		!(strings.HasPrefix(f[5], "key/") || strings.HasPrefix(f[5], "alias/")) {
		return "", "", errors.New("not a KMS key ARN (want aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID)")
	}
	return arn, f[3], nil
}

// kmsAlgorithm maps a JWE key algorithm to KMS's.
var kmsAlgorithm = map[string]types.EncryptionAlgorithmSpec{
	"RSA-OAEP-256": types.EncryptionAlgorithmSpecRsaesOaepSha256,
	"RSA-OAEP":     types.EncryptionAlgorithmSpecRsaesOaepSha1,
}

// Unwrap decrypts a wrapped content key with the KMS key.
func (k *KMS) Unwrap(ctx context.Context, keyURI, alg string, wrapped []byte) ([]byte, error) {
	arn, region, err := kmsKey(keyURI)
	if err != nil {
		return nil, err
	}
	spec, ok := kmsAlgorithm[alg]
	if !ok {
		return nil, fmt.Errorf("key algorithm %q is refused", alg)
	}
	if err := k.env.checkCredentials(ctx); err != nil {
		return nil, err
	}
	out, err := k.clients.get(region).Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:      wrapped,
		KeyId:               aws.String(arn),
		EncryptionAlgorithm: spec,
	})
	if err != nil {
		return nil, kmsReason(ctx, err, "kms:Decrypt", region)
	}
	return out.Plaintext, nil
}

// PublicKey fetches the key's public half and checks that it is an RSA key
// for ENCRYPT_DECRYPT.
func (k *KMS) PublicKey(ctx context.Context, keyURI string) (jwe.Public, error) {
	arn, region, err := kmsKey(keyURI)
	if err != nil {
		return jwe.Public{}, err
	}
	if err := k.env.checkCredentials(ctx); err != nil {
		return jwe.Public{}, err
	}
	out, err := k.clients.get(region).GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(arn)})
	if err != nil {
		return jwe.Public{}, kmsReason(ctx, err, "kms:GetPublicKey", region)
	}
	if out.KeyUsage != types.KeyUsageTypeEncryptDecrypt {
		return jwe.Public{}, fmt.Errorf("the key's usage is %s, not ENCRYPT_DECRYPT", out.KeyUsage)
	}
	var algs []string
	for _, a := range []string{"RSA-OAEP-256", "RSA-OAEP"} {
		if slices.Contains(out.EncryptionAlgorithms, kmsAlgorithm[a]) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		return jwe.Public{}, fmt.Errorf("the key (%s) does not do RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1", out.KeySpec)
	}
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	rsaPub, isRSA := pub.(*rsa.PublicKey)
	if err != nil || !isRSA {
		return jwe.Public{}, fmt.Errorf("the key's public key (%s) is not an RSA key", out.KeySpec)
	}
	return jwe.Public{Key: rsaPub, Algorithms: algs, KeyURI: keyURI}, nil
}

// kmsReason explains a KMS error, naming the permission a denied call
// needs.
func kmsReason(ctx context.Context, err error, action, region string) error {
	var ae smithy.APIError
	if ctx.Err() == nil && errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDeniedException":
			return fmt.Errorf("access denied: the workload's role needs %s on the key (key policy or IAM)", action)
		case "NotFoundException":
			return fmt.Errorf("the key does not exist in %s", region)
		case "InvalidCiphertextException", "IncorrectKeyException":
			return errors.New("the key cannot unwrap the JWE's content key: the JWE was encrypted to another key (or its encrypted key was altered)")
		case "DisabledException":
			return errors.New("the key is disabled")
		case "KMSInvalidStateException":
			return fmt.Errorf("the key cannot be used now: %s", oneLine(ae.ErrorMessage()))
		case "InvalidKeyUsageException":
			return fmt.Errorf("the key is not for ENCRYPT_DECRYPT with this algorithm: %s", oneLine(ae.ErrorMessage()))
		}
	}
	return reason(ctx, err, action, region)
}
