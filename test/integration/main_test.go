// Package integration holds hearth's real-VM tests: every test here boots
// microVMs through the built hearth binary or the Go SDK (QEMU under
// software emulation on a host without usable KVM).
package integration

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/hearthvm/hearth/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: -short given, real-VM tests not run")
		os.Exit(0)
	}
	var err error
	env, err = testenv.Get()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: cannot prepare real-VM tests:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
