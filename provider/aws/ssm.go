package aws

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/secrets-init/secrets-init/provider"
)

// ssmBatchSize is the most parameters one GetParameters call may name.
const ssmBatchSize = 10

// actionGetParameters names the IAM actions a denied parameter needs:
// GetParameters for batches, GetParameter for the one-by-one fallback.
const actionGetParameters = "ssm:GetParameters and ssm:GetParameter"

type ssmStore struct {
	env     *env
	limit   *provider.Limiter
	log     *slog.Logger
	clients *regionClients[ssm.Client]
}

func newSSM(e *env, s provider.Settings) *ssmStore {
	return &ssmStore{
		env:   e,
		limit: s.Limit,
		log:   logger(s),
		clients: newRegionClients(func(region string) *ssm.Client {
			return ssm.NewFromConfig(e.cfg, func(o *ssm.Options) { o.Region = region })
		}),
	}
}

// Fetch implements provider.Store.
func (p *ssmStore) Fetch(ctx context.Context, targets []provider.Target) []provider.Result {
	return fetch(ctx, p.env, p.limit, p, ssmBatchSize, targets)
}

// batchable: GetParameters takes versions and labels in the name.
func (p *ssmStore) batchable(provider.Target) bool { return true }

// batch calls GetParameters. When it is denied (the role may lack
// ssm:GetParameters, or one parameter or its KMS key may be denied, which
// denies the whole call), every parameter is fetched on its own.
func (p *ssmStore) batch(ctx context.Context, c call, targets []provider.Target, res []provider.Result) []int {
	want := make(map[string]int, len(c.idx))
	names := make([]string, len(c.idx))
	for k, i := range c.idx {
		names[k] = ssmName(targets[i])
		want[names[k]] = i
	}
	out, err := p.clients.get(c.region).GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)})
	if isAccessDenied(err) {
		p.log.Info("a GetParameters call was denied: reading its parameters one by one", "region", c.region, "parameters", len(c.idx))
		return c.idx
	}
	if err != nil {
		err = reason(ctx, err, actionGetParameters, c.region)
		for _, i := range c.idx {
			res[i].Err = err
		}
		return nil
	}
	for _, prm := range out.Parameters {
		sel := aws.ToString(prm.Selector)
		answer(want, res, paramResult(&prm), aws.ToString(prm.Name)+sel, aws.ToString(prm.ARN)+sel)
	}
	for _, name := range out.InvalidParameters {
		if i, ok := want[name]; ok {
			res[i].Err = apiReason("ParameterNotFound", "", actionGetParameters, c.region)
		}
	}
	return unanswered(c.idx, res)
}

func (p *ssmStore) single(ctx context.Context, region string, t provider.Target) provider.Result {
	out, err := p.clients.get(region).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ssmName(t)), WithDecryption: aws.Bool(true)})
	if err != nil {
		return provider.Result{Err: reason(ctx, err, actionGetParameters, region)}
	}
	if out.Parameter == nil {
		return provider.Result{Err: errors.New("AWS answered without the parameter")}
	}
	return paramResult(out.Parameter)
}

// ssmName is the name SSM reads t by: NAME or NAME:VERSION_OR_LABEL, where
// NAME may be an ARN.
func ssmName(t provider.Target) string {
	if t.Version != "" {
		return t.Name + ":" + t.Version
	}
	return t.Name
}

func paramResult(prm *types.Parameter) provider.Result {
	return provider.Result{Value: bytesOf(prm.Value), Version: strconv.FormatInt(prm.Version, 10)}
}
