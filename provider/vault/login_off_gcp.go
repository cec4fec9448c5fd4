//go:build no_gcp

package vault

import (
	"context"
	"errors"
)

var errNoGCP = errors.New("this binary was built without Google support (build tag no_gcp), which the gcp logins need")

func gcpGCELogin(context.Context, string) (map[string]any, error) { return nil, errNoGCP }

func gcpIAMLogin(context.Context, string) (map[string]any, error) { return nil, errNoGCP }
