package aws

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secrets-init/secrets-init/provider"
)

// smBatchSize is the most secrets one BatchGetSecretValue call may name.
const smBatchSize = 20

// actionGetSecretValue is the IAM action a denied secret needs.
const actionGetSecretValue = "secretsmanager:GetSecretValue"

type secretsManager struct {
	env     *env
	limit   *provider.Limiter
	log     *slog.Logger
	clients *regionClients[secretsmanager.Client]
	// noBatch is set once BatchGetSecretValue was denied or not served:
	// roles made for doitintl/secrets-init may grant only GetSecretValue,
	// and some emulators serve only GetSecretValue.
	noBatch atomic.Bool
}

func newSecretsManager(e *env, s provider.Settings) *secretsManager {
	return &secretsManager{
		env:   e,
		limit: s.Limit,
		log:   logger(s),
		clients: newRegionClients(func(region string) *secretsmanager.Client {
			return secretsmanager.NewFromConfig(e.cfg, func(o *secretsmanager.Options) { o.Region = region })
		}),
	}
}

// Fetch implements provider.Store.
func (p *secretsManager) Fetch(ctx context.Context, targets []provider.Target) []provider.Result {
	return fetch(ctx, p.env, p.limit, p, smBatchSize, targets)
}

// batchable: BatchGetSecretValue serves only the current version. (So a
// batch names each secret once: targets differ in Stage or Version.)
func (p *secretsManager) batchable(t provider.Target) bool {
	return t.Stage == "" && t.Version == ""
}

func (p *secretsManager) batch(ctx context.Context, c call, targets []provider.Target, res []provider.Result) []int {
	if len(c.idx) == 1 {
		i := c.idx[0]
		res[i] = p.single(ctx, c.region, targets[i])
		return nil
	}
	if p.noBatch.Load() {
		return c.idx
	}
	byID := make(map[string]int, len(c.idx))
	ids := make([]string, len(c.idx))
	for k, i := range c.idx {
		ids[k] = targets[i].Name
		byID[ids[k]] = i
	}
	out, err := p.clients.get(c.region).BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
	if isAccessDenied(err) || isUnsupported(err) {
		if !p.noBatch.Swap(true) {
			p.log.Info("secretsmanager:BatchGetSecretValue is denied or not served: fetching secrets one by one")
		}
		return c.idx
	}
	if err != nil {
		err = reason(ctx, err, "secretsmanager:BatchGetSecretValue", c.region)
		for _, i := range c.idx {
			res[i].Err = err
		}
		return nil
	}
	for _, v := range out.SecretValues {
		answer(byID, res, secretResult(v.SecretString, v.SecretBinary, v.VersionId), aws.ToString(v.Name), aws.ToString(v.ARN))
	}
	for _, e := range out.Errors {
		if i, ok := byID[aws.ToString(e.SecretId)]; ok {
			res[i].Err = apiReason(aws.ToString(e.ErrorCode), aws.ToString(e.Message), actionGetSecretValue, c.region)
		}
	}
	// A secret named by a partial ARN comes back under its full ARN.
	return unanswered(c.idx, res)
}

func (p *secretsManager) single(ctx context.Context, region string, t provider.Target) provider.Result {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(t.Name)}
	if t.Stage != "" {
		in.VersionStage = aws.String(t.Stage)
	}
	if t.Version != "" {
		in.VersionId = aws.String(t.Version)
	}
	out, err := p.clients.get(region).GetSecretValue(ctx, in)
	if err != nil {
		return provider.Result{Err: reason(ctx, err, actionGetSecretValue, region)}
	}
	return secretResult(out.SecretString, out.SecretBinary, out.VersionId)
}

// secretResult is the Result of a secret version: its SecretBinary if it
// has one, else its SecretString.
func secretResult(s *string, b []byte, version *string) provider.Result {
	r := provider.Result{Value: bytesOf(s), Version: aws.ToString(version)}
	if s == nil && b != nil {
		r.Value, r.Binary = b, true
	}
	return r
}

// bytesOf returns the bytes of *s, non-nil even when empty.
func bytesOf(s *string) []byte {
	return append([]byte{}, aws.ToString(s)...)
}
