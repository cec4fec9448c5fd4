package awsfake

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// A Key is a KMS asymmetric key. Its private half stays in the fake.
type Key struct {
	Private    *rsa.PrivateKey
	Usage      string   // default ENCRYPT_DECRYPT
	Algorithms []string // default RSAES_OAEP_SHA_1 and RSAES_OAEP_SHA_256
}

// PutKey adds the KMS key id in region and returns its ARN. FailName(id,
// …) makes its calls fail.
func (s *Server) PutKey(region, id string, k Key) string {
	if k.Usage == "" {
		k.Usage = "ENCRYPT_DECRYPT"
	}
	if k.Algorithms == nil {
		k.Algorithms = []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
	}
	s.set(func() { s.keys[key{region, id}] = k })
	return KeyARN(region, id)
}

// KeyARN returns the ARN of the KMS key id in region.
func KeyARN(region, id string) string {
	return fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", Partition(region), region, Account, id)
}

// findKey finds a key by id or ARN in region. The caller holds s.mu.
func (s *Server) findKey(region, id string) (string, Key, *apiError) {
	if strings.HasPrefix(id, "arn:") {
		f := strings.SplitN(id, ":", 6)
		if len(f) != 6 || f[3] != region || f[4] != Account || !strings.HasPrefix(f[5], "key/") {
			return "", Key{}, &apiError{"NotFoundException", "Invalid arn " + region}
		}
		id = strings.TrimPrefix(f[5], "key/")
	}
	if e, ok := s.nameFails[id]; ok {
		return "", Key{}, &e
	}
	k, ok := s.keys[key{region, id}]
	if !ok {
		return "", Key{}, &apiError{"NotFoundException", "Key '" + KeyARN(region, id) + "' does not exist"}
	}
	return KeyARN(region, id), k, nil
}

func (s *Server) kmsDecrypt(region string, body []byte) (any, *apiError) {
	var in struct {
		CiphertextBlob      []byte
		KeyId               string
		EncryptionAlgorithm string
	}
	if err := json.Unmarshal(body, &in); err != nil || len(in.CiphertextBlob) == 0 {
		return nil, &apiError{"ValidationException", "bad request"}
	}
	if in.KeyId == "" {
		return nil, &apiError{"ValidationException", "KeyId is required for asymmetric keys"}
	}
	s.mu.Lock()
	arn, k, aerr := s.findKey(region, in.KeyId)
	s.mu.Unlock()
	if aerr != nil {
		return nil, aerr
	}
	if k.Usage != "ENCRYPT_DECRYPT" {
		return nil, &apiError{"InvalidKeyUsageException", "KeyUsage " + k.Usage + " is not ENCRYPT_DECRYPT"}
	}
	h := map[string]crypto.Hash{"RSAES_OAEP_SHA_1": crypto.SHA1, "RSAES_OAEP_SHA_256": crypto.SHA256}[in.EncryptionAlgorithm]
	if h == 0 || !slices.Contains(k.Algorithms, in.EncryptionAlgorithm) {
		return nil, &apiError{"InvalidCiphertextException", ""}
	}
	plain, err := rsa.DecryptOAEP(h.New(), nil, k.Private, in.CiphertextBlob, nil)
	if err != nil {
		return nil, &apiError{"InvalidCiphertextException", ""}
	}
	return map[string]any{"KeyId": arn, "Plaintext": plain, "EncryptionAlgorithm": in.EncryptionAlgorithm}, nil
}

func (s *Server) kmsGetPublicKey(region string, body []byte) (any, *apiError) {
	var in struct{ KeyId string }
	if err := json.Unmarshal(body, &in); err != nil || in.KeyId == "" {
		return nil, &apiError{"ValidationException", "bad request"}
	}
	s.mu.Lock()
	arn, k, aerr := s.findKey(region, in.KeyId)
	s.mu.Unlock()
	if aerr != nil {
		return nil, aerr
	}
	der, err := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	if err != nil {
		return nil, &apiError{"KMSInternalException", err.Error()}
	}
	out := map[string]any{"KeyId": arn, "PublicKey": der, "KeySpec": fmt.Sprintf("RSA_%d", k.Private.N.BitLen()), "KeyUsage": k.Usage}
	if k.Usage == "ENCRYPT_DECRYPT" {
		out["EncryptionAlgorithms"] = k.Algorithms
	} else {
		out["SigningAlgorithms"] = []string{"RSASSA_PSS_SHA_256"}
	}
	return out, nil
}
