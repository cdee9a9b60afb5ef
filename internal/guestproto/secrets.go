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
}

// SecretFile is one file under SecretsDir: Name is a secret name
// ([A-Za-z_][A-Za-z0-9_]*), Data its exact bytes.
type SecretFile struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}
