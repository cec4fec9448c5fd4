package refresh

import (
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// TestPlanOfWrite: a Vault write is never polled (polling would issue a
// new certificate every round), so it costs no calls per month.
func TestPlanOfWrite(t *testing.T) {
	ref, _, err := provider.Parse(`>>vault:pki/issue/web#certificate#{"common_name":"w"}?file`)
	if err != nil {
		t.Fatal(err)
	}
	p := PlanOf(ref, time.Minute, false)
	if p.PerMonth != 0 || !strings.Contains(p.How, "never polled") {
		t.Errorf("PlanOf(write) = %+v", p)
	}
	read, _, _ := provider.Parse("vault:kv/app#k")
	if PlanOf(read, time.Minute, false).PerMonth == 0 {
		t.Error("a KV read costs nothing")
	}
}
