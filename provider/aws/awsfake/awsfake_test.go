package awsfake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// TestHold checks that held requests reach the fake, its call count and
// its rate limit only at Release, all at once.
func TestHold(t *testing.T) {
	f := awsfake.New()
	defer f.Close()
	f.PutSecret("us-east-1", "s", awsfake.Secret{String: "v"})
	client := newClient(f)
	f.SetRateLimit(1, 2)
	f.Hold()
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
			errs <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); f.Held() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held after 10s, want %d", f.Held(), n)
		}
	}
	if got := len(f.Calls()); got != 0 {
		t.Errorf("%d calls recorded while held, want 0", got)
	}
	f.Release()
	throttled := 0
	for range n {
		var api smithy.APIError
		if err := <-errs; errors.As(err, &api) && api.ErrorCode() == "ThrottlingException" {
			throttled++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// Released together, they meet a bucket of 2 that refills at 1/s.
	if throttled != n-2 || f.Throttled() != n-2 || len(f.Calls()) != n || f.Held() != 0 {
		t.Errorf("after Release: %d throttled (fake: %d), %d calls, %d held; want %d, %d, %d, 0",
			throttled, f.Throttled(), len(f.Calls()), f.Held(), n-2, n-2, n)
	}
}

func newClient(f *awsfake.Server) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(awsfake.AccessKeyID, awsfake.SecretAccessKey, ""),
		Retryer:      aws.NopRetryer{},
	})
}

// TestRateLimit checks the token bucket: a burst passes, the requests above
// the rate are answered ThrottlingException and counted, and removing the
// limit lets every request through.
func TestRateLimit(t *testing.T) {
	f := awsfake.New()
	defer f.Close()
	f.PutSecret("us-east-1", "s", awsfake.Secret{String: "v"})
	client := newClient(f)
	get := func() (ok bool) {
		t.Helper()
		_, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
		var api smithy.APIError
		switch {
		case err == nil:
			return true
		case errors.As(err, &api) && api.ErrorCode() == "ThrottlingException":
			return false
		}
		t.Fatalf("GetSecretValue: %v", err)
		return false
	}

	const rate, burst, n = 10, 5, 20
	f.SetRateLimit(rate, burst)
	start := time.Now()
	passed := 0
	for range n {
		if get() {
			passed++
		}
	}
	elapsed := time.Since(start)
	if most := burst + int(rate*elapsed.Seconds()) + 1; passed < burst || passed > most {
		t.Errorf("%d of %d requests in %s passed, want %d to %d", passed, n, elapsed, burst, most)
	}
	if got := f.Throttled(); got != n-passed {
		t.Errorf("Throttled() = %d, want %d", got, n-passed)
	}
	if got := len(f.Calls()); got != n {
		t.Errorf("%d calls recorded, want %d (throttled ones count)", got, n)
	}

	f.SetRateLimit(0, 0)
	for i := range n {
		if !get() {
			t.Fatalf("request %d throttled with no limit", i)
		}
	}
	f.Throttle(2)
	get()
	get()
	if got := f.Throttled(); got != n-passed+2 {
		t.Errorf("Throttled() = %d after Throttle(2), want %d", got, n-passed+2)
	}
}
