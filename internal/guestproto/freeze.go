package guestproto

// OpFreeze makes the guest's writable disk consistent for a host-side
// copy: the agent syncs and freezes the file system of the data disk
// (FIFREEZE), sends one FrameData ("frozen"), and holds it frozen until
// the host sends FrameDataEOF (thaw), the stream closes (the host died),
// or Request.Freeze.TimeoutMS passes (auto-thaw). It then thaws (FITHAW)
// and ends with Response.Freeze. Writers in the guest block while frozen,
// and go on afterwards.
const OpFreeze Op = "freeze"

// FreezeRequest bounds a freeze.
type FreezeRequest struct {
	// TimeoutMS thaws on its own after this long even if the host never
	// says so (default 60000, at most 600000).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// FreezeResult ends a freeze stream.
type FreezeResult struct {
	// FrozenMS is how long the file system stayed frozen.
	FrozenMS int64 `json:"frozen_ms"`
	// AutoThawed is set when the timeout thawed it before the host asked:
	// a copy made meanwhile may be inconsistent and must be discarded.
	AutoThawed bool `json:"auto_thawed,omitempty"`
}
