package decrypt

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/encrypt"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const key = "file:../server/testdata/secrets/key.pem"

// seal encrypts plain as `secrets-init encrypt --key KEY` does.
func seal(t *testing.T, plain []byte) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := encrypt.Main([]string{"--key", key}, bytes.NewReader(plain), &out, &errb); code != 0 {
		t.Fatalf("encrypt: %d %s", code, errb.String())
	}
	return strings.TrimSpace(out.String())
}

func decrypter() *Decrypter {
	return &Decrypter{Open: jwe.Open, Settings: provider.Settings{Limit: provider.NewLimiter(2)}}
}

func secret(data map[string][]byte, str map[string]string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{Label: LabelValue}}, Data: data, StringData: str}
}

func TestBinaryPlaintext(t *testing.T) {
	bin := []byte{0, 0xff, 0xfe, 'x', 0, '\n'}
	ref := seal(t, bin)
	ops, err := decrypter().Patch(context.Background(), secret(map[string][]byte{"k": []byte(ref)}, nil), nil)
	if err != nil || len(ops) != 1 || !bytes.Equal(ops[0].Value.([]byte), bin) || ops[0].Path != "/data/k" {
		t.Fatalf("data: %+v %v", ops, err)
	}
	_, err = decrypter().Patch(context.Background(), secret(nil, map[string]string{"k": ref}), nil)
	var d *DenyError
	if !errors.As(err, &d) || d.Msg != "Secret ns/s: stringData k: the plaintext is not UTF-8, which stringData cannot hold: put the value in data" {
		t.Fatalf("stringData: %v", err)
	}
}

func TestOptionsAndPointer(t *testing.T) {
	ref := seal(t, []byte("aGVsbG8K"))
	ops, err := decrypter().Patch(context.Background(), secret(map[string][]byte{"a/b~c": []byte(ref + "?encoding=base64&trim")}, nil), nil)
	if err != nil || len(ops) != 1 || ops[0].Path != "/data/a~1b~0c" || string(ops[0].Value.([]byte)) != "hello" {
		t.Fatalf("%+v %v", ops, err)
	}
	for opt, msg := range map[string]string{
		"#member":   "data k: a #member selector is not supported in a Secret",
		"?file":     "data k: ?file and ?optional have no meaning in a Secret",
		"?optional": "data k: ?file and ?optional have no meaning in a Secret",
	} {
		_, err := decrypter().Patch(context.Background(), secret(map[string][]byte{"k": []byte(ref + opt)}, nil), nil)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v", opt, err)
		}
	}
}

// blockingKMS waits for its context to end, as a KMS that does not answer.
type blockingKMS struct{ started chan<- struct{} }

func (b blockingKMS) Unwrap(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (blockingKMS) PublicKey(context.Context, string) (jwe.Public, error) {
	return jwe.Public{}, errors.New("not here")
}

// A deadline that ends first denies the Secret, naming every key.
func TestDeadline(t *testing.T) {
	started := make(chan struct{}, 1)
	jwe.Register("hcvault", func(context.Context, provider.Settings) (jwe.KMS, error) { return blockingKMS{started}, nil })
	var out, errb bytes.Buffer
	if code := encrypt.Main([]string{"--key", key, "--kid", "hcvault://transit/keys/app/versions/1"}, strings.NewReader("canary-deadline-value"), &out, &errb); code != 0 {
		t.Fatalf("encrypt: %s", errb.String())
	}
	ref := strings.TrimSpace(out.String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := decrypter().Patch(ctx, secret(map[string][]byte{"a": []byte(ref), "b": []byte(ref)}, nil), nil)
	if err == nil || !strings.Contains(err.Error(), "Secret ns/s: data a: key hcvault://transit/keys/app/versions/1: context canceled; data b: ") || strings.Contains(err.Error(), "canary") {
		t.Fatalf("%v", err)
	}
}
