package guestproto

// OpRestored tells the agent that its VM was just restored from a memory
// snapshot (a reset or start of a memory snapshot, a fork of one, or a
// start after a suspend), before anyone else uses the guest. The agent:
//   - steps the clock to Request.Restored.UnixNanos (settimeofday): the
//     guest's clock stopped when it was saved;
//   - adds Entropy to the kernel's random pool and credits it
//     (RNDADDENTROPY): clones of one snapshot must not share their random
//     state (the microvm machine has no ACPI table for VMGenID);
//   - with ID set and different from the workspace its disk was made for,
//     gives the guest a new /etc/machine-id (a fork);
//   - with Hostname set, sets the hostname (and /etc/hostname).
//
// Response.Restored says what it did.
const OpRestored Op = "restored"

// RestoredRequest is the body of OpRestored.
type RestoredRequest struct {
	// UnixNanos is the host's clock when it sent the request.
	UnixNanos int64 `json:"unix_nanos"`
	// Entropy is host randomness for the guest's pool (at most 512 bytes).
	Entropy []byte `json:"entropy"`
	// ID is the workspace the guest now is; Hostname its hostname.
	ID       string `json:"id,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

// MaxRestoreEntropy bounds RestoredRequest.Entropy.
const MaxRestoreEntropy = 512

// RestoredResult is what OpRestored did.
type RestoredResult struct {
	// ClockStepMS is how far the clock was stepped (positive: forward).
	ClockStepMS int64 `json:"clock_step_ms"`
	// EntropyBytes were added to the random pool.
	EntropyBytes int `json:"entropy_bytes"`
	// NewMachineID is set when the guest got a new /etc/machine-id.
	NewMachineID bool   `json:"new_machine_id,omitempty"`
	Hostname     string `json:"hostname,omitempty"`
}
