package firecracker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// NetworkInterface is PUT /network-interfaces/{iface_id} (swagger
// NetworkInterface). host_dev_name names an existing TAP device in
// Firecracker's network namespace; Firecracker opens it with
// IFF_TAP|IFF_NO_PI|IFF_VNET_HDR and does no filtering of its own.
//
// hearth's plan for a guest network on Firecracker (not wired yet): a
// per-workspace network namespace (root, or an unprivileged user namespace:
// `unshare --user --map-root-user --net`) holding one TAP device (TapName)
// that Firecracker runs in; the supervisor reads and writes the TAP's
// frames through an AF_PACKET socket opened inside that namespace and
// pumps them into the same user-space stack as QEMU's (package netstack).
// No routes, no NAT and no iptables: the stack is the only way out.
type NetworkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac,omitempty"`
	MTU         int    `json:"mtu,omitempty"`
}

// TapName is the TAP device's name inside a workspace's network namespace.
const TapName = "tap0"

// GuestNIC is the interface a workspace with a network gets.
func GuestNIC(mac string) NetworkInterface {
	return NetworkInterface{IfaceID: "eth0", HostDevName: TapName, GuestMAC: mac}
}

// PutNetworkInterface calls PUT /network-interfaces/{iface_id} (pre-boot).
func (c *Client) PutNetworkInterface(ctx context.Context, n NetworkInterface) error {
	if n.IfaceID == "" || strings.ContainsAny(n.IfaceID, "/?#% ") {
		return fmt.Errorf("firecracker API PUT /network-interfaces: bad iface id %q", n.IfaceID)
	}
	if n.HostDevName == "" {
		return fmt.Errorf("firecracker API PUT /network-interfaces/%s: host_dev_name (a TAP device) is required", n.IfaceID)
	}
	return c.do(ctx, http.MethodPut, "/network-interfaces/"+n.IfaceID, n, nil)
}
