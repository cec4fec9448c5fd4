package aws

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/secrets-init/secrets-init/provider"
)

// The cheap version checks of refresh (provider.Versioner). Neither reads
// a value through KMS: DescribeSecret returns metadata only; GetParameters
// is called without decryption, so a SecureString comes back as
// ciphertext (and a String's value, which is dropped at once).

var (
	_ provider.Versioner = (*secretsManager)(nil)
	_ provider.Versioner = (*ssmStore)(nil)
)

// IAM actions of the version checks.
const (
	actionDescribeSecret = "secretsmanager:DescribeSecret"
	actionGetParams      = "ssm:GetParameters"
)

// Versions implements provider.Versioner with one DescribeSecret call per
// secret, concurrent under the engine's limit: the version id that holds
// the target's stage (default AWSCURRENT) now. A secret scheduled for
// deletion is reported as not found.
func (p *secretsManager) Versions(ctx context.Context, targets []provider.Target) []provider.Result {
	defer p.env.tr.CloseIdleConnections()
	if err := p.env.checkCredentials(ctx); err != nil {
		return provider.Failed(len(targets), err)
	}
	res := make([]provider.Result, len(targets))
	p.limit.Each(ctx, len(targets), func(i int) {
		res[i] = p.version(ctx, targets[i])
	})
	return res
}

func (p *secretsManager) version(ctx context.Context, t provider.Target) provider.Result {
	region := cmp.Or(t.Region, p.env.cfg.Region)
	if region == "" {
		return provider.Result{Err: errNoRegion}
	}
	out, err := p.clients.get(region).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(t.Name)})
	if err != nil {
		return provider.Result{Err: versionReason(ctx, err, actionDescribeSecret, region)}
	}
	if out.DeletedDate != nil {
		return provider.Result{Err: fmt.Errorf("%w in %s: scheduled for deletion", provider.ErrNotFound, region)}
	}
	stage := cmp.Or(t.Stage, "AWSCURRENT")
	var ids []string
	for id, stages := range out.VersionIdsToStages {
		if slices.Contains(stages, stage) {
			ids = append(ids, id)
		}
	}
	switch len(ids) {
	case 0:
		return provider.Result{Err: fmt.Errorf("%w in %s: no version has the stage %s", provider.ErrNotFound, region, stage)}
	case 1:
		return provider.Result{Version: ids[0]}
	}
	return provider.Result{Err: fmt.Errorf("AWS named %d versions with the stage %s", len(ids), stage)}
}

// Versions implements provider.Versioner with GetParameters (without
// decryption) in batches of up to 10 names per region, concurrent under the
// engine's limit: the version number each name, or name:label, reads now.
// A denied batch reports every one of its parameters as denied (IAM
// denies a GetParameters call when one of its names is denied).
func (p *ssmStore) Versions(ctx context.Context, targets []provider.Target) []provider.Result {
	defer p.env.tr.CloseIdleConnections()
	if err := p.env.checkCredentials(ctx); err != nil {
		return provider.Failed(len(targets), err)
	}
	res := make([]provider.Result, len(targets))
	groups := map[string][]int{}
	var regions []string
	for i, t := range targets {
		region := cmp.Or(t.Region, p.env.cfg.Region)
		if region == "" {
			res[i].Err = errNoRegion
			continue
		}
		if groups[region] == nil {
			regions = append(regions, region)
		}
		groups[region] = append(groups[region], i)
	}
	var calls []call
	for _, region := range regions {
		calls = append(calls, split(region, groups[region], ssmBatchSize)...)
	}
	p.limit.Each(ctx, len(calls), func(k int) {
		p.versionBatch(ctx, calls[k], targets, res)
	})
	return res
}

// versionBatch sets the results of the targets of c (each call writes only
// its own indices).
func (p *ssmStore) versionBatch(ctx context.Context, c call, targets []provider.Target, res []provider.Result) {
	want := map[string][]int{}
	var names []string
	for _, i := range c.idx {
		n := ssmName(targets[i])
		if want[n] == nil {
			names = append(names, n)
		}
		want[n] = append(want[n], i)
	}
	out, err := p.clients.get(c.region).GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(false)})
	if err != nil {
		err = versionReason(ctx, err, actionGetParams, c.region)
		for _, i := range c.idx {
			res[i].Err = err
		}
		return
	}
	set := func(name string, r provider.Result) {
		for _, i := range want[name] {
			res[i] = r
		}
		delete(want, name)
	}
	for _, prm := range out.Parameters {
		sel := aws.ToString(prm.Selector)
		r := provider.Result{Version: strconv.FormatInt(prm.Version, 10)}
		// It answers every request that names it, by name or by ARN.
		for _, n := range []string{aws.ToString(prm.Name) + sel, aws.ToString(prm.ARN) + sel} {
			if want[n] != nil {
				set(n, r)
			}
		}
	}
	for _, name := range out.InvalidParameters {
		if want[name] != nil {
			set(name, provider.Result{Err: apiReason("ParameterNotFound", "", actionGetParams, c.region)})
		}
	}
	for name := range want { // named in the request, absent from the answer
		set(name, provider.Result{Err: fmt.Errorf("AWS did not answer for the parameter in %s", c.region)})
	}
}

// versionReason is reason for a version check: a refused call wraps
// provider.ErrDenied and names the action it needs.
func versionReason(ctx context.Context, err error, action, region string) error {
	if ctx.Err() == nil && isAccessDenied(err) {
		return fmt.Errorf("%w in %s: the role needs %s (falling back to reading values)", provider.ErrDenied, region, action)
	}
	return reason(ctx, err, action, region)
}
