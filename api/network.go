package api

import "time"

// NetworkRule is one ordered egress rule. Match is DOMAIN, *.DOMAIN or CIDR
// with an optional :PORT or :PORT-PORT and an optional /tcp or /udp.
type NetworkRule struct {
	Action string `json:"action"` // "allow" or "deny"
	Match  string `json:"match"`
}

// NetworkPolicy is a workspace's guest network policy.
type NetworkPolicy struct {
	// Mode is none (no network interface, the default), egress (deny by
	// default, plus Rules) or open (all public egress).
	Mode string `json:"mode"`
	// Rules are evaluated in order; the first match decides.
	Rules []NetworkRule `json:"rules,omitempty"`
	// AllowHost lists host loopback ports the guest reaches at
	// host.hearth.internal.
	AllowHost []int `json:"allow_host,omitempty"`
}

// NetworkInfo is a workspace's network policy and where it stands.
type NetworkInfo struct {
	Workspace string        `json:"workspace"`
	Policy    NetworkPolicy `json:"policy"`
	// Applied is true when the running VM enforces Policy now; false when
	// the change waits for the next start (a change to or from mode none
	// adds or removes the network interface) or the workspace is stopped.
	Applied bool   `json:"applied"`
	Note    string `json:"note,omitempty"`
	// Guest addressing while the network is on.
	GuestAddress string `json:"guest_address,omitempty"`
	Gateway      string `json:"gateway,omitempty"`
	DNS          string `json:"dns,omitempty"`
}

// NetworkEvent is one line of a workspace's network log.
type NetworkEvent struct {
	Time time.Time `json:"time"`
	// Kind is dns, tcp or udp.
	Kind string `json:"kind"`
	// Dest is IP:PORT for tcp and udp, the queried name for dns.
	Dest string `json:"dest"`
	// Name is the domain a connection was matched through (DNS pin, HTTP
	// Host, TLS SNI), if any.
	Name string `json:"name,omitempty"`
	// Action is allowed or denied.
	Action string `json:"action"`
	// Rule is the rule or built-in reason that decided.
	Rule string `json:"rule"`
	// Detail says more (a dropped DNS answer, a failed dial).
	Detail   string `json:"detail,omitempty"`
	BytesOut int64  `json:"bytes_out,omitempty"`
	BytesIn  int64  `json:"bytes_in,omitempty"`
	// DurationMS is how long an allowed flow lasted.
	DurationMS int64 `json:"duration_ms,omitempty"`
}

// NetworkTestResult is the outcome of a live self-test from the guest.
type NetworkTestResult struct {
	Workspace string             `json:"workspace"`
	Mode      string             `json:"mode"`
	OK        bool               `json:"ok"`
	Checks    []NetworkTestCheck `json:"checks"`
}

// NetworkTestCheck is one probe of a self-test.
type NetworkTestCheck struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// NetworkSpec is the guest network part of workspace_create and
// workspace_network_set.
type NetworkSpec struct {
	// Network is the mode: none (no network interface), egress (deny by
	// default, allow what Rules allow) or open (all public egress).
	Network string `json:"network,omitempty" default:"none"`
	// Rules are ordered allow and deny rules; the CLI builds them from its
	// repeatable --allow RULE and --deny RULE flags, in order.
	Rules []NetworkRule `json:"rules,omitempty" cli:"-"`
	// AllowHost lists host loopback ports the guest may reach at
	// host.hearth.internal (the gateway address).
	AllowHost []int `json:"allow_host,omitempty"`
}

// Policy is the spec as a policy (nil when nothing is set: mode none).
func (s NetworkSpec) Policy() *NetworkPolicy {
	if s.Network == "" && len(s.Rules) == 0 && len(s.AllowHost) == 0 {
		return nil
	}
	mode := s.Network
	if mode == "" {
		mode = "none"
	}
	return &NetworkPolicy{Mode: mode, Rules: s.Rules, AllowHost: s.AllowHost}
}

// Spec is the policy as a request's spec.
func (p *NetworkPolicy) Spec() NetworkSpec {
	if p == nil {
		return NetworkSpec{}
	}
	return NetworkSpec{Network: p.Mode, Rules: p.Rules, AllowHost: p.AllowHost}
}

// NetworkSetRequest is the request of `workspace_network_set`: it replaces
// the whole policy.
type NetworkSetRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	NetworkSpec
}

// NetworkLogRequest is the request of `workspace_network_log`.
type NetworkLogRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Tail keeps the last N events (default 1000; After pages by time).
	Tail int `json:"tail,omitempty" default:"1000" max:"100000"`
	// After keeps events strictly after this RFC 3339 time.
	After string `json:"after,omitempty"`
}

// NetworkLog is the result of `workspace_network_log`.
type NetworkLog struct {
	Events []NetworkEvent `json:"events"`
}
