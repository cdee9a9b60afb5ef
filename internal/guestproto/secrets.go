package guestproto

// OpSecrets replaces the guest's secret files: Request.Secrets; Response
// with no body. The agent mounts a tmpfs at SecretsDir (never on the
// writable disk) when it first has a file to write, writes each file with
// mode 0400 owned by root, and removes files not in the request. With
// Unmount it overwrites every file with zeros, removes them and unmounts
// the tmpfs (before a disk or memory snapshot). The host sends the whole
// set after every boot and every change: the guest keeps no secret across
// a reboot.
const OpSecrets Op = "secrets"

// SecretsDir is where secret files appear in the guest.
const SecretsDir = "/run/secrets"

// SecretsRequest is the body of OpSecrets.
type SecretsRequest struct {
	Files []SecretFile `json:"files,omitempty"`
	// Unmount wipes and unmounts SecretsDir; Files must be empty.
	Unmount bool `json:"unmount,omitempty"`
	// BrokerCA is the workspace's broker CA certificate (PEM) when it has
	// a brokered secret: the agent adds it to the system's trust (see
	// BrokerCAFile) and points execs, shells and services at a bundle
	// holding it (TrustEnv). Empty takes it out again. Ignored with
	// Unmount.
	BrokerCA []byte `json:"broker_ca,omitempty"`
}

// Where the agent installs the broker CA in the guest.
const (
	// BrokerCAFile is the CA certificate alone.
	BrokerCAFile = "/usr/local/share/ca-certificates/hearth-broker.crt"
	// SystemBundle is the system's CA bundle, to which the agent appends
	// the CA (between BrokerCABegin and BrokerCAEnd lines).
	SystemBundle  = "/etc/ssl/certs/ca-certificates.crt"
	BrokerCABegin = "# hearth broker CA begin"
	BrokerCAEnd   = "# hearth broker CA end"
)

// TrustEnv is the environment that points TLS clients at a bundle
// holding the broker CA: OpenSSL and curl, Python requests, Node and git.
func TrustEnv() []string {
	return []string{
		"SSL_CERT_FILE=" + SystemBundle,
		"REQUESTS_CA_BUNDLE=" + SystemBundle,
		"CURL_CA_BUNDLE=" + SystemBundle,
		"GIT_SSL_CAINFO=" + SystemBundle,
		"NODE_EXTRA_CA_CERTS=" + BrokerCAFile,
	}
}

// SecretFile is one file under SecretsDir: Name is a secret name
// ([A-Za-z_][A-Za-z0-9_]*), Data its exact bytes.
type SecretFile struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}
