//go:build no_aws

package vault

import (
	"context"
	"errors"
)

func awsIAMLogin(context.Context, string) (map[string]any, error) {
	return nil, errors.New("this binary was built without AWS support (build tag no_aws), which the aws-iam login needs")
}
