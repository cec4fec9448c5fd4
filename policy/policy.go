package policy

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// Formats are the output formats, and the store each one writes grants for
// ("" for summary: every store).
var Formats = map[string]store{
	"aws":             storeAWS,
	"aws-terraform":   storeAWS,
	"vault":           storeVault,
	"vault-terraform": storeVault,
	"gcp":             storeGCP,
	"gcp-terraform":   storeGCP,
	"azure":           storeAzure,
	"azure-terraform": storeAzure,
	"summary":         "",
}

// GroupBys are the values of --group-by.
var GroupBys = []string{"serviceaccount", "workload", "none"}

// A Request is one run of the generator.
type Request struct {
	Uses    []Use
	Format  string
	GroupBy string
	// Group, when set, keeps only that group, and the aws and vault
	// formats then print its bare policy.
	Group string
	Options
}

// A row is one variable's reference and the grants it needs (for the
// summary).
type row struct {
	group string
	use   Use
	g     grant
	none  string // why there is no grant (a local file)
}

// A group is the grants of one identity.
type group struct {
	name   string
	grants []grant // sorted, de-duplicated
}

// Generate writes the grants that the request's references need. When a
// reference cannot be scoped (or is malformed), it returns no output and
// one error line per such reference instead.
func Generate(req Request) ([]byte, []string) {
	want, ok := Formats[req.Format]
	if !ok {
		return nil, []string{fmt.Sprintf("unknown format %q", req.Format)}
	}
	uses := slices.Clone(req.Uses)
	slices.SortFunc(uses, compareUses)
	uses = slices.Compact(uses)

	var errs []string
	var rows []row
	byGroup := map[string]map[grant]bool{}
	for _, u := range uses {
		ref, isRef, err := u.parse()
		if !isRef {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s: %s: malformed reference: %v", u.Where(), u.Var, shown(u, ref, err), err))
			continue
		}
		name := u.Group(req.GroupBy)
		if req.Group != "" && name != req.Group {
			continue
		}
		st, keyURI := storeOf(ref.Kind), ""
		if ref.Kind == provider.JWE {
			// The key is chosen as the store chooses it, with the
			// workload's own settings: a JWE without one fails at
			// run time, in every format.
			if keyURI, err = jwe.Key(ref.Target, u.Context.lookup); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s: %s: %v", u.Where(), u.Var, shown(u, ref, nil), err))
				continue
			}
			st = keyStore(keyURI)
		}
		if want != "" && st != want {
			continue
		}
		gs, err := req.grants(ref, keyURI, u.Context)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s: %s: %v", u.Where(), u.Var, shown(u, ref, nil), err))
			continue
		}
		if len(gs) == 0 {
			why := ref.Kind.String() + " is read locally"
			if keyURI != "" {
				why = "the key " + keyURI + " is a local file"
			}
			rows = append(rows, row{group: name, use: u, none: "none (" + why + ")"})
			continue
		}
		if byGroup[name] == nil {
			byGroup[name] = map[grant]bool{}
		}
		for _, g := range gs {
			byGroup[name][g] = true
			rows = append(rows, row{group: name, use: u, g: g})
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return nil, slices.Compact(errs)
	}
	if req.Group != "" && len(byGroup) == 0 && len(rows) == 0 {
		what := "references"
		if want != "" {
			what = string(want) + " references"
		}
		return nil, []string{fmt.Sprintf("no %s for group %q (the groups with references: %s)", what, req.Group, strings.Join(groupNames(uses, req.GroupBy), ", "))}
	}

	var groups []group
	for name, set := range byGroup {
		g := group{name: name}
		for gr := range set {
			g.grants = append(g.grants, gr)
		}
		g.grants = append(g.grants, req.extras(g.grants)...)
		slices.SortFunc(g.grants, compareGrants)
		g.grants = slices.Compact(g.grants)
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b group) int { return cmp.Compare(a.name, b.name) })
	for _, g := range groups {
		for _, gr := range req.extras(g.grants) {
			rows = append(rows, row{group: g.name, g: gr})
		}
	}
	slices.SortFunc(rows, compareRows)
	rows = slices.Compact(rows)

	bare := req.GroupBy == "none" || req.Group != ""
	var b bytes.Buffer
	switch req.Format {
	case "aws":
		writeAWS(&b, groups, bare)
	case "aws-terraform":
		writeAWSTerraform(&b, groups)
	case "vault":
		writeVault(&b, groups, bare)
	case "vault-terraform":
		writeVaultTerraform(&b, groups)
	case "gcp":
		writeGCP(&b, groups)
	case "gcp-terraform":
		writeGCPTerraform(&b, groups)
	case "azure":
		writeAzure(&b, groups)
	case "azure-terraform":
		writeAzureTerraform(&b, groups)
	case "summary":
		writeSummary(&b, rows)
	}
	return b.Bytes(), nil
}

// extras are the grants a group needs for all its references together:
// BatchGetSecretValue (on "*", the only resource it takes) when it reads
// Secrets Manager, and kms:Decrypt on the --kms-key keys when it reads
// from AWS.
func (o *Options) extras(gs []grant) []grant {
	var sm, aws bool
	for _, g := range gs {
		sm = sm || g.Action == "secretsmanager:GetSecretValue"
		aws = aws || g.Store == storeAWS
	}
	var out []grant
	if sm && !o.NoBatch {
		out = append(out, grant{Store: storeAWS, Action: "secretsmanager:BatchGetSecretValue", Resource: "*"})
	}
	if aws {
		for _, k := range o.KMSKeys {
			out = append(out, grant{Store: storeAWS, Action: "kms:Decrypt", Resource: k})
		}
	}
	return out
}

func compareUses(a, b Use) int {
	return cmp.Or(
		cmp.Compare(a.File, b.File), cmp.Compare(a.Workload, b.Workload),
		cmp.Compare(a.Container, b.Container), cmp.Compare(a.ServiceAccount, b.ServiceAccount),
		cmp.Compare(a.Var, b.Var), cmp.Compare(a.Value, b.Value),
		cmp.Compare(a.Context.AWSRegion, b.Context.AWSRegion), cmp.Compare(a.Context.GoogleProject, b.Context.GoogleProject),
		cmp.Compare(a.Context.AzureVaultURL, b.Context.AzureVaultURL),
		cmp.Compare(a.Context.JWEKey, b.Context.JWEKey), cmp.Compare(a.Context.JWEKeys, b.Context.JWEKeys),
		cmp.Compare(btoi(a.Context.JWEKeysSet), btoi(b.Context.JWEKeysSet)), cmp.Compare(a.Context.JWEDetect, b.Context.JWEDetect))
}

func compareGrants(a, b grant) int {
	return cmp.Or(cmp.Compare(a.Store, b.Store), cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Action, b.Action),
		cmp.Compare(a.Project, b.Project), cmp.Compare(a.Location, b.Location), cmp.Compare(a.Secret, b.Secret))
}

func compareRows(a, b row) int {
	return cmp.Or(cmp.Compare(a.group, b.group), compareUses(a.use, b.use), compareGrants(a.g, b.g), cmp.Compare(a.none, b.none))
}

// groupNames are the names of the groups of the uses that hold a
// reference.
func groupNames(uses []Use, by string) []string {
	var out []string
	for _, u := range uses {
		if _, isRef, _ := u.parse(); isRef {
			out = append(out, u.Group(by))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// shown is how a variable's reference is shown in messages and in the
// summary: as the engine shows it (provider.Shown).
func shown(u Use, ref provider.Ref, err error) string {
	return provider.Shown(u.Value, ref, err, !isRef(u.Value))
}

func isRef(value string) bool {
	_, ok, _ := provider.Parse(value)
	return ok
}
