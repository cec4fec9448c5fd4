package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/hashicorp/go-cleanhttp"
)

// The azure login follows the protocol of Vault's official helper
// (github.com/hashicorp/vault/api/auth/azure, not served here): a managed
// identity's token and the instance's identifiers from Azure IMDS.

// azureIMDS is the Azure Instance Metadata Service.
const azureIMDS = "http://169.254.169.254/metadata/"

// azureLogin gets a managed identity's token and the instance's
// identifiers from Azure IMDS, for Vault's azure auth method.
func azureLogin(ctx context.Context, role string) (map[string]any, error) {
	md := http.Header{"Metadata": {"true"}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := callJSON(ctx, http.MethodGet, azureIMDS+"identity/oauth2/token?api-version=2018-02-01&resource="+url.QueryEscape("https://management.azure.com/"), nil, md, &tok); err != nil {
		return nil, fmt.Errorf("no managed identity token from Azure IMDS: %w", err)
	}
	var inst struct {
		Compute struct {
			Name              string `json:"name"`
			ResourceGroupName string `json:"resourceGroupName"`
			SubscriptionID    string `json:"subscriptionId"`
			VMScaleSetName    string `json:"vmScaleSetName"`
		} `json:"compute"`
	}
	if err := callJSON(ctx, http.MethodGet, azureIMDS+"instance?api-version=2021-05-01&format=json", nil, md, &inst); err != nil {
		return nil, fmt.Errorf("no instance metadata from Azure IMDS: %w", err)
	}
	c := inst.Compute
	data := map[string]any{"role": role, "jwt": tok.AccessToken, "subscription_id": c.SubscriptionID, "resource_group_name": c.ResourceGroupName}
	if c.VMScaleSetName != "" {
		data["vmss_name"] = c.VMScaleSetName
	} else {
		data["vm_name"] = c.Name
	}
	return data, nil
}

// callJSON makes an HTTP call and decodes its JSON answer into out. Errors
// carry the status, never the body (it may hold a credential).
func callJSON(ctx context.Context, method, u string, body io.Reader, h http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header = h
	c := cleanhttp.DefaultClient() // its own connections, released below
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(statusText(resp.StatusCode))
	}
	if json.NewDecoder(resp.Body).Decode(out) != nil {
		return errors.New("the answer is not the expected JSON")
	}
	return nil
}
