package firecracker

import (
	"context"
	"testing"
)

func TestPutNetworkInterfaceGolden(t *testing.T) {
	dir := t.TempDir()
	fake, c := newFakeAPI(t, dir)
	if err := c.PutNetworkInterface(context.Background(), GuestNIC("52:54:00:12:34:56")); err != nil {
		t.Fatal(err)
	}
	reqs := fake.requests()
	if len(reqs) != 1 || reqs[0].Method != "PUT" || reqs[0].Path != "/network-interfaces/eth0" {
		t.Fatalf("requests %v, want one PUT /network-interfaces/eth0", reqs)
	}
	checkGolden(t, "network-interface.json", reqs[0].Body, dir)
	if err := c.PutNetworkInterface(context.Background(), NetworkInterface{IfaceID: "eth0"}); err == nil {
		t.Error("no host_dev_name: accepted")
	}
}
