package registry

import (
	"io"
	"os"

	ecr "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"
)

// CloudKeychains are the cloud registries' own credentials, tried after
// the pull secrets: Google Artifact Registry and GCR with Application
// Default Credentials (GKE Workload Identity), and Amazon ECR with the AWS
// default chain (IRSA, EKS Pod Identity, instance role). Each answers only
// for its own registries' hosts and is anonymous elsewhere. acr is the
// Azure Container Registry keychain (DefaultAzureCredential; see ACR).
func CloudKeychains(acr *ACR) []authn.Keychain {
	// The ECR helper would cache tokens under $HOME, which the webhook's
	// read-only root filesystem does not allow; the webhook caches image
	// configurations itself.
	if _, ok := os.LookupEnv("AWS_ECR_DISABLE_CACHE"); !ok {
		os.Setenv("AWS_ECR_DISABLE_CACHE", "true")
	}
	// DefaultAzureCredential's developer credentials (the az, azd and
	// pwsh command lines) have no place in the webhook's image: only the
	// environment, workload identity and managed identity are tried.
	if _, ok := os.LookupEnv("AZURE_TOKEN_CREDENTIALS"); !ok {
		os.Setenv("AZURE_TOKEN_CREDENTIALS", "prod")
	}
	return []authn.Keychain{
		google.Keychain,
		authn.NewKeychainFromHelper(ecr.NewECRHelper(ecr.WithLogger(io.Discard))),
		acr,
	}
}
