// Package encrypt is `secrets-init encrypt` (SPEC §9): it encrypts a
// value from stdin to an RSA public key, from a file or fetched from a
// KMS, and prints it as a jwe: reference to commit to Git.
package encrypt

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// Exit codes.
const (
	exitFailed = 1
	exitUsage  = 2
)

const usage = `Usage: secrets-init encrypt --key KEYREF [--enc A256GCM] [--json] [--no-prefix] [--trim] [--in FILE] [--kid KEYURI]

Encrypts the value on stdin (or in FILE), byte for byte, to an RSA public key
and prints it as a jwe: reference, for the workload to decrypt at start.
KEYREF is a public key file (PEM or JWK) or a key URI, whose public key is
fetched from its KMS (with the encrypting person's credentials) and checked:
  gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N
  aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID
  azure-kv://VAULT.vault.azure.net/keys/NAME/VERSION
  hcvault://MOUNT/keys/NAME/versions/N
  file:PATH
The key URI becomes the JWE's kid, so that the workload finds the key.

Flags:
`

// encs are the content encryptions encrypt offers.
var encs = []string{"A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"}

// Main runs `secrets-init encrypt ARGS` and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("encrypt", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		keyRef   = fs.String("key", "", "the public key: a PEM or JWK `FILE`, or a key URI")
		enc      = fs.String("enc", "A256GCM", "content `ENCRYPTION`: "+strings.Join(encs, ", "))
		asJSON   = fs.Bool("json", false, "write the flattened JSON serialisation instead of the compact one")
		noPrefix = fs.Bool("no-prefix", false, "write the bare JWE, without jwe: (for SECRETS_INIT_JWE_DETECT=1)")
		trim     = fs.Bool("trim", false, "strip one trailing newline from the value")
		in       = fs.String("in", "", "read the value from `FILE` instead of stdin")
		kid      = fs.String("kid", "", "the key URI to record as kid when --key is a file (default: the JWK's kid, if a key URI)")
		timeout  = fs.Duration("timeout", 60*time.Second, "deadline for fetching the public key")
	)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "secrets-init encrypt: "+format+"\n", a...)
		return exitFailed
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "secrets-init encrypt: %v\n", err)
		printUsage(stderr, fs)
		return exitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "secrets-init encrypt: unexpected argument %q (the value comes from stdin or --in)\n", fs.Arg(0))
		return exitUsage
	case *keyRef == "":
		fmt.Fprintln(stderr, "secrets-init encrypt: --key is required")
		printUsage(stderr, fs)
		return exitUsage
	case !slices.Contains(encs, *enc):
		fmt.Fprintf(stderr, "secrets-init encrypt: --enc %q is not one of %s\n", *enc, strings.Join(encs, ", "))
		return exitUsage
	case *kid != "" && !provider.IsKeyURI(*kid):
		fmt.Fprintf(stderr, "secrets-init encrypt: --kid %q is not a key URI (want one of %s)\n", *kid, strings.Join(provider.KeySchemes, " "))
		return exitUsage
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	pub, algs, keyID, err := publicKey(ctx, *keyRef, stderr)
	if err != nil {
		return fail("%s: %v", *keyRef, err)
	}
	if *kid != "" {
		keyID = *kid
	}
	if keyID == "" {
		fmt.Fprintln(stderr, "secrets-init encrypt: warning: the JWE names no key (give a key URI, or --kid): the workload needs ?key=KEYURI or SECRETS_INIT_JWE_KEY")
	}

	var r io.Reader = stdin
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		r = f
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return fail("reading the value: %v", err)
	}
	if *trim {
		if v, ok := bytes.CutSuffix(plain, []byte("\n")); ok {
			plain, _ = bytes.CutSuffix(v, []byte("\r"))
		}
	} else if bytes.HasSuffix(plain, []byte("\n")) {
		fmt.Fprintln(stderr, "secrets-init encrypt: warning: the value ends with a newline, which is encrypted with it (--trim strips it)")
	}
	if len(plain) == 0 {
		return fail("the value is empty: nothing to encrypt")
	}

	out, err := seal(pub, algs[0], *enc, keyID, plain, *asJSON)
	if err != nil {
		return fail("%v", err)
	}
	if !*noPrefix {
		out = "jwe:" + out
	}
	fmt.Fprintln(stdout, out)
	return 0
}

// publicKey reads or fetches the public key, its algorithms (preferred
// first) and the kid to record.
func publicKey(ctx context.Context, ref string, stderr io.Writer) (*rsa.PublicKey, []string, string, error) {
	if provider.IsKeyURI(ref) {
		s := provider.Settings{
			Log:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Limit: provider.NewLimiter(1),
		}
		p, err := jwe.PublicKey(ctx, s, ref)
		return p.Key, p.Algorithms, p.KeyURI, err
	}
	pub, algs, kid, err := jwe.ReadPublicKey(ref)
	return pub, algs, kid, err
}

// seal encrypts plain and serialises it.
func seal(pub *rsa.PublicKey, alg, enc, kid string, plain []byte, asJSON bool) (string, error) {
	e, err := jose.NewEncrypter(jose.ContentEncryption(enc), jose.Recipient{Algorithm: jose.KeyAlgorithm(alg), Key: pub, KeyID: kid}, nil)
	if err != nil {
		return "", fmt.Errorf("cannot encrypt to the key: %v", err)
	}
	obj, err := e.Encrypt(plain)
	if err != nil {
		return "", errors.New("cannot encrypt the value")
	}
	if asJSON {
		return obj.FullSerialize(), nil
	}
	return obj.CompactSerialize()
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
