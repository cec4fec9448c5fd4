package gcp

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"sync"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// KMSEmulatorEnv names the variable that points the KMS client at an
// emulator (host:port, plaintext gRPC, no authentication).
const KMSEmulatorEnv = "KMS_EMULATOR_HOST"

// KMS unwraps the content keys of jwe: references with Cloud KMS
// asymmetric decryption keys
// (gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N)
// through AsymmetricDecrypt, checking CRC32C both ways. The client is
// created, and the credentials looked up, on the first call.
type KMS struct {
	emulator string
	extra    []option.ClientOption // tests: trust a fake's TLS certificate

	once   sync.Once
	client *kms.KeyManagementClient
	err    error
}

// OpenKMS opens the gcp-kms key scheme. It does no I/O.
func OpenKMS(context.Context, provider.Settings) (*KMS, error) {
	return &KMS{emulator: os.Getenv(KMSEmulatorEnv)}, nil
}

func (k *KMS) connect(ctx context.Context) (*kms.KeyManagementClient, error) {
	k.once.Do(func() {
		opts := []option.ClientOption{option.WithLogger(quiet), option.WithTelemetryDisabled()}
		if k.emulator != "" {
			opts = append(opts, option.WithEndpoint(k.emulator), option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		} else {
			creds, err := findCredentials(ctx)
			if err != nil {
				k.err = err
				return
			}
			opts = append(opts, option.WithAuthCredentials(creds))
		}
		k.client, k.err = kms.NewKeyManagementClient(ctx, append(opts, k.extra...)...)
		if k.err != nil {
			k.err = fmt.Errorf("creating a Cloud KMS client: %v", k.err)
		}
	})
	return k.client, k.err
}

// Close closes the client's connection.
func (k *KMS) Close() {
	if k.client != nil {
		k.client.Close()
	}
}

// kmsName checks a gcp-kms:// key URI and returns the key version's name.
func kmsName(keyURI string) (string, error) {
	name := strings.TrimPrefix(keyURI, "gcp-kms://")
	f := strings.Split(name, "/")
	if len(f) != 10 || f[0] != "projects" || f[2] != "locations" || f[4] != "keyRings" || f[6] != "cryptoKeys" || f[8] != "cryptoKeyVersions" || strings.Contains(name, "//") || strings.HasSuffix(name, "/") {
		return "", errors.New("not a Cloud KMS key version (want gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N)")
	}
	return name, nil
}

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli())) }

// Unwrap decrypts a wrapped content key. The key version's algorithm
// fixes the OAEP hash; a JWE of another one does not decrypt.
func (k *KMS) Unwrap(ctx context.Context, keyURI, alg string, wrapped []byte) ([]byte, error) {
	name, err := kmsName(keyURI)
	if err != nil {
		return nil, err
	}
	c, err := k.connect(ctx)
	if err != nil {
		return nil, err
	}
	r := &retryer{} // the engine's Backoff
	resp, err := c.AsymmetricDecrypt(ctx, &kmspb.AsymmetricDecryptRequest{
		Name:             name,
		Ciphertext:       wrapped,
		CiphertextCrc32C: wrapperspb.Int64(crc32c(wrapped)),
	}, gax.WithRetry(func() gax.Retryer { return r }))
	if err != nil {
		return nil, kmsDescribe(ctx, err, r.last, "cloudkms.cryptoKeyVersions.useToDecrypt (role roles/cloudkms.cryptoKeyDecrypter)")
	}
	switch {
	case !resp.GetVerifiedCiphertextCrc32C():
		return nil, errors.New("Cloud KMS did not verify the request's CRC32C (corrupted in transit?); try again")
	case resp.GetPlaintextCrc32C() == nil || resp.GetPlaintextCrc32C().GetValue() != crc32c(resp.GetPlaintext()):
		return nil, errors.New("the answer failed its CRC32C check (corrupted in transit); try again")
	}
	return resp.GetPlaintext(), nil
}

// PublicKey fetches the key version's public key and checks that it is an
// RSA OAEP decryption key with a hash JOSE names.
func (k *KMS) PublicKey(ctx context.Context, keyURI string) (jwe.Public, error) {
	name, err := kmsName(keyURI)
	if err != nil {
		return jwe.Public{}, err
	}
	c, err := k.connect(ctx)
	if err != nil {
		return jwe.Public{}, err
	}
	r := &retryer{} // the engine's Backoff
	pk, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: name}, gax.WithRetry(func() gax.Retryer { return r }))
	if err != nil {
		return jwe.Public{}, kmsDescribe(ctx, err, r.last, "cloudkms.cryptoKeyVersions.viewPublicKey (role roles/cloudkms.publicKeyViewer)")
	}
	if pk.GetPemCrc32C() == nil || pk.GetPemCrc32C().GetValue() != crc32c([]byte(pk.GetPem())) {
		return jwe.Public{}, errors.New("the public key failed its CRC32C check (corrupted in transit); try again")
	}
	var algs []string
	switch a := pk.GetAlgorithm().String(); {
	case strings.HasPrefix(a, "RSA_DECRYPT_OAEP_") && strings.HasSuffix(a, "_SHA256"):
		algs = []string{"RSA-OAEP-256"}
	case strings.HasPrefix(a, "RSA_DECRYPT_OAEP_") && strings.HasSuffix(a, "_SHA1"):
		algs = []string{"RSA-OAEP"}
	case strings.HasPrefix(a, "RSA_DECRYPT_OAEP_"):
		return jwe.Public{}, fmt.Errorf("the key's algorithm %s has no JOSE name: use an RSA_DECRYPT_OAEP_*_SHA256 key", a)
	default:
		return jwe.Public{}, fmt.Errorf("the key's algorithm is %s: the key's purpose must be ASYMMETRIC_DECRYPT with RSA_DECRYPT_OAEP_*_SHA256", a)
	}
	block, _ := pem.Decode([]byte(pk.GetPem()))
	if block == nil {
		return jwe.Public{}, errors.New("the public key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	rsaPub, ok := pub.(*rsa.PublicKey)
	if err != nil || !ok {
		return jwe.Public{}, errors.New("the public key is not an RSA key")
	}
	return jwe.Public{Key: rsaPub, Algorithms: algs, KeyURI: keyURI}, nil
}

// kmsDescribe explains a failed KMS call, naming the permission it needs.
func kmsDescribe(ctx context.Context, err, last error, permission string) error {
	st, _ := status.FromError(err)
	if ctx.Err() != nil || st.Code() == codes.DeadlineExceeded {
		return describe(ctx, err, last, "")
	}
	switch st.Code() {
	case codes.PermissionDenied:
		if reason(err) == "SERVICE_DISABLED" {
			return errors.New("the Cloud KMS API is not enabled in the key's project (enable cloudkms.googleapis.com)")
		}
		return fmt.Errorf("permission denied: the workload needs %s on the key; Google also answers this when the key does not exist", permission)
	case codes.NotFound:
		return errors.New("the key version does not exist")
	case codes.FailedPrecondition:
		return fmt.Errorf("the key version cannot decrypt: %s", st.Message())
	case codes.InvalidArgument:
		if strings.Contains(st.Message(), "checksum") {
			return errors.New("Cloud KMS says the request was corrupted in transit (CRC32C); try again")
		}
		if strings.Contains(st.Message(), "Decryption failed") {
			return errors.New("the key cannot unwrap the JWE's content key: the JWE was encrypted to another key (or its encrypted key was altered)")
		}
	}
	return errors.New(statusText(err))
}
