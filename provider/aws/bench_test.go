package aws

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// BenchmarkResolve resolves n distinct references against the fake with
// 50 ms of latency per call, as a fresh process would (new clients and
// connections each time), at the default --concurrency of 16. It reports
// the API calls per resolution.
func BenchmarkResolve(b *testing.B) {
	for _, kind := range []provider.Kind{provider.SecretsManager, provider.SSM} {
		for _, n := range []int{1, 10, 50, 200} {
			b.Run(fmt.Sprintf("%s/refs=%d", kind, n), func(b *testing.B) {
				f := newFake(b, "us-east-1")
				f.SetLatency(50 * time.Millisecond)
				refs := make([]string, n)
				for i := range refs {
					name := fmt.Sprint("/bench/", i)
					if kind == provider.SSM {
						f.PutParameter("us-east-1", name, awsfake.Parameter{Value: "v", Secure: true})
						refs[i] = "aws:ssm:" + name
					} else {
						f.PutSecret("us-east-1", name, awsfake.Secret{String: "v"})
						refs[i] = "aws:secretsmanager:" + name
					}
				}
				ts, _ := targets(b, refs)
				e, err := loadEnv(context.Background(), nil)
				if err != nil {
					b.Fatal(err)
				}
				s := provider.Settings{Limit: provider.NewLimiter(16)}
				for b.Loop() {
					var p provider.Store = newSecretsManager(e, s)
					if kind == provider.SSM {
						p = newSSM(e, s)
					}
					for _, r := range p.Fetch(context.Background(), ts) {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
				}
				b.ReportMetric(float64(len(f.Calls()))/float64(b.N), "calls/op")
			})
		}
	}
}
