package gcpfake

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"hash/crc32"
	"net"
	"strings"
	"sync"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A KMS is a fake Cloud KMS: a gRPC server on a loopback port (plaintext,
// for KMS_EMULATOR_HOST) that implements AsymmetricDecrypt and
// GetPublicKey for RSA decryption keys as the real service does, with
// CRC32C checksums both ways.
type KMS struct {
	kmspb.UnimplementedKeyManagementServiceServer

	// Addr is the host:port it listens on.
	Addr string

	grpc *grpc.Server

	mu       sync.Mutex
	keys     map[string]kmsKey // by crypto key version name
	denied   map[string]bool
	requests []string // "Method name"
	auth     []string
	corrupt  bool // a wrong plaintext_crc32c / pem_crc32c
	flip     bool // corrupt the ciphertext on its way in (its CRC32C no longer matches)
}

type kmsKey struct {
	priv *rsa.PrivateKey
	alg  kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
}

// StartKMS serves a new fake Cloud KMS on 127.0.0.1 (plaintext, as
// KMS_EMULATOR_HOST); Close stops it.
func StartKMS() (*KMS, error) { return startKMS() }

// StartKMSTLS is StartKMS over TLS, with a new self-signed certificate for
// 127.0.0.1 that the pool holds: for clients that send credentials.
func StartKMSTLS() (*KMS, *x509.CertPool, error) {
	creds, roots, err := selfSigned()
	if err != nil {
		return nil, nil, err
	}
	k, err := startKMS(creds)
	return k, roots, err
}

func startKMS(opts ...grpc.ServerOption) (*KMS, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &KMS{Addr: l.Addr().String(), grpc: grpc.NewServer(opts...), keys: map[string]kmsKey{}, denied: map[string]bool{}}
	kmspb.RegisterKeyManagementServiceServer(k.grpc, k)
	go k.grpc.Serve(l)
	return k, nil
}

// Close stops the server.
func (k *KMS) Close() { k.grpc.Stop() }

// AddKey stores a crypto key version, named
// projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N, with
// its algorithm (e.g. RSA_DECRYPT_OAEP_2048_SHA256, or a signing one).
func (k *KMS) AddKey(name string, priv *rsa.PrivateKey, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[name] = kmsKey{priv, alg}
}

// Deny makes calls on the key version answer PermissionDenied.
func (k *KMS) Deny(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.denied[name] = true
}

// CorruptCRC makes answers carry a wrong checksum.
func (k *KMS) CorruptCRC(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.corrupt = on
}

// CorruptRequests flips a bit of each ciphertext received, as a fault on
// the way would: the request's ciphertext_crc32c then does not match.
func (k *KMS) CorruptRequests(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.flip = on
}

// Authorizations returns the authorization metadata of the calls so far.
func (k *KMS) Authorizations() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string{}, k.auth...)
}

// Requests returns "Method name" for each call so far.
func (k *KMS) Requests() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string{}, k.requests...)
}

func crc(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// find records the call and finds the key version. The caller holds k.mu.
func (k *KMS) find(ctx context.Context, method, name string) (kmsKey, error) {
	k.requests = append(k.requests, method+" "+name)
	md, _ := metadata.FromIncomingContext(ctx)
	k.auth = append(k.auth, md.Get("authorization")...)
	f := strings.Split(name, "/")
	if len(f) != 10 || f[0] != "projects" || f[2] != "locations" || f[4] != "keyRings" || f[6] != "cryptoKeys" || f[8] != "cryptoKeyVersions" {
		return kmsKey{}, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not represent a valid resource name.", name)
	}
	perm := map[string]string{"AsymmetricDecrypt": "cloudkms.cryptoKeyVersions.useToDecrypt", "GetPublicKey": "cloudkms.cryptoKeyVersions.viewPublicKey"}[method]
	if k.denied[name] {
		return kmsKey{}, status.Errorf(codes.PermissionDenied, "Permission '%s' denied on resource '%s' (or it may not exist).", perm, name)
	}
	key, ok := k.keys[name]
	if !ok {
		return kmsKey{}, status.Errorf(codes.NotFound, "%s not found.", name)
	}
	return key, nil
}

// decryptHash is the OAEP hash of a decryption algorithm (0: not one).
func decryptHash(alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm) crypto.Hash {
	switch alg {
	case kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA256, kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_3072_SHA256, kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_4096_SHA256:
		return crypto.SHA256
	case kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_4096_SHA512:
		return crypto.SHA512
	case kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA1, kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_3072_SHA1, kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_4096_SHA1:
		return crypto.SHA1
	}
	return 0
}

// AsymmetricDecrypt implements the RPC.
func (k *KMS) AsymmetricDecrypt(ctx context.Context, req *kmspb.AsymmetricDecryptRequest) (*kmspb.AsymmetricDecryptResponse, error) {
	k.mu.Lock()
	key, err := k.find(ctx, "AsymmetricDecrypt", req.GetName())
	corrupt, flip := k.corrupt, k.flip
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ct := append([]byte{}, req.GetCiphertext()...)
	if flip && len(ct) > 0 {
		ct[0] ^= 1
	}
	verified := false
	if sum := req.GetCiphertextCrc32C(); sum != nil {
		if crc(ct) != sum.GetValue() {
			return nil, status.Error(codes.InvalidArgument, "The checksum in field ciphertext_crc32c did not match the data in field ciphertext.")
		}
		verified = true
	}
	h := decryptHash(key.alg)
	if h == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not a key for ASYMMETRIC_DECRYPT.", req.GetName())
	}
	plain, err := rsa.DecryptOAEP(h.New(), nil, key.priv, ct, nil)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")
	}
	sum := crc(plain)
	if corrupt {
		sum ^= 1
	}
	return &kmspb.AsymmetricDecryptResponse{
		Plaintext:                plain,
		PlaintextCrc32C:          wrapperspb.Int64(sum),
		VerifiedCiphertextCrc32C: verified,
		ProtectionLevel:          kmspb.ProtectionLevel_HSM,
	}, nil
}

// GetPublicKey implements the RPC.
func (k *KMS) GetPublicKey(ctx context.Context, req *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	k.mu.Lock()
	key, err := k.find(ctx, "GetPublicKey", req.GetName())
	corrupt := k.corrupt
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.priv.PublicKey)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	sum := crc([]byte(p))
	if corrupt {
		sum ^= 1
	}
	return &kmspb.PublicKey{
		Pem:             p,
		PemCrc32C:       wrapperspb.Int64(sum),
		Algorithm:       key.alg,
		Name:            req.GetName(),
		ProtectionLevel: kmspb.ProtectionLevel_HSM,
	}, nil
}
