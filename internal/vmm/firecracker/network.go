package firecracker

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/hearthvm/hearth/internal/tapns"
)

// NetworkInterface is PUT /network-interfaces/{iface_id} (swagger
// NetworkInterface). host_dev_name names an existing TAP device in
// Firecracker's network namespace; Firecracker opens it with
// IFF_TAP|IFF_NO_PI|IFF_VNET_HDR and does no filtering of its own.
//
// hearth's guest network on Firecracker: Firecracker runs in a network
// namespace of its own (package tapns: root, or an unprivileged user
// namespace) holding one TAP device (TapName); the supervisor reads and
// writes the TAP's frames through an AF_PACKET socket opened inside that
// namespace and pumps them into the same user-space stack as QEMU's
// (package netstack). No routes, no NAT and no iptables: the stack is the
// only way out.
type NetworkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac,omitempty"`
	MTU         int    `json:"mtu,omitempty"`
}

// TapName is the TAP device's name inside a workspace's network namespace.
const TapName = tapns.Name

// GuestMAC is the guest NIC's MAC address (the same as QEMU's).
const GuestMAC = "52:54:00:12:34:56"

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
