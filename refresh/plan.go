package refresh

import (
	"math"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// Method is how refresh checks the references of one store, for `check
// --refresh` and docs/refresh.md.
type Method struct {
	How         string  // the call, and the permission it needs
	Implemented bool    // false: planned, the store is not checked yet
	PerRound    float64 // store API calls per target per round (batching included)
}

// Methods are the change detections of SPEC §8, per store.
var Methods = map[provider.Kind]Method{
	provider.SecretsManager: {How: "DescribeSecret (secretsmanager:DescribeSecret); if denied, the value and a keyed hash", Implemented: true, PerRound: 1},
	provider.SSM:            {How: "GetParameters versions, 10 a call, no decryption (ssm:GetParameters)", Implemented: true, PerRound: 0.1},
	provider.Google:         {How: "GetSecretVersion of latest or the alias, no payload (secretmanager.versions.get)", Implemented: true, PerRound: 1},
	provider.Azure:          {How: "GetSecret of the current version, for its version id (secrets/get)", Implemented: true, PerRound: 1},
	provider.Vault:          {How: "KV v2 metadata current_version (read on the metadata path); KV v1 is not checked; dynamic secrets are not polled: their leases are renewed, or read again before they end", Implemented: true, PerRound: 1},
	provider.File:           {How: "keyed hash of the file's content (a read, no API call)", Implemented: true, PerRound: 0},
}

// Plan is how one reference would be checked.
type Plan struct {
	How         string
	Implemented bool
	PerMonth    int // store API calls per instance per month for its target (once implemented)
}

// month is the month of the estimates.
const month = 30 * 24 * time.Hour

// PlanOf returns how ref would be checked every interval. shared is true
// for a reference whose target an earlier one already counts.
func PlanOf(ref provider.Ref, interval time.Duration, shared bool) Plan {
	switch {
	case ref.Opts.Refresh.Kind == provider.ActOff:
		return Plan{How: "off (?refresh=off): never checked", Implemented: true}
	case ref.Pinned():
		return Plan{How: "pinned to a version: never checked", Implemented: true}
	case ref.IsWrite():
		// Never polled: polling a write would issue anew every round.
		return Plan{How: "a Vault write: never polled; issued again through its lease, at about 2/3 of its lease or certificate validity", Implemented: true}
	}
	m := Methods[ref.Kind]
	p := Plan{How: m.How, Implemented: m.Implemented}
	if !m.Implemented {
		p.How = "not checked yet (planned: " + m.How + ")"
	}
	if !shared {
		p.PerMonth = int(math.Ceil(m.PerRound * Rounds(interval)))
	}
	return p
}

// Rounds is the number of rounds per month at interval.
func Rounds(interval time.Duration) float64 {
	if interval <= 0 {
		return 0
	}
	return float64(month) / float64(interval)
}
