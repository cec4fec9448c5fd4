package registry

import (
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"
)

// CloudKeychains are the cloud registries' own credentials, tried after
// the pull secrets: Google Artifact Registry and GCR with Application
// Default Credentials (GKE Workload Identity), Amazon ECR with the AWS
// default chain (see ECR) and Azure Container Registry with
// DefaultAzureCredential (see ACR). Each answers only for its own
// registries' hosts and is anonymous elsewhere.
func CloudKeychains(ecr *ECR, acr *ACR) []authn.Keychain {
	// DefaultAzureCredential's developer credentials (the az, azd and
	// pwsh command lines) have no place in the webhook's image: only the
	// environment, workload identity and managed identity are tried.
	if _, ok := os.LookupEnv("AZURE_TOKEN_CREDENTIALS"); !ok {
		os.Setenv("AZURE_TOKEN_CREDENTIALS", "prod")
	}
	return []authn.Keychain{google.Keychain, ecr, acr}
}
