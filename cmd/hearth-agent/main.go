// Command hearth-agent is hearth's guest agent. It runs inside every VM as
// /init from a tiny initramfs (PID 1): it prepares the root file system and
// serves the host over vsock or a virtio-serial port. See package agent.
//
// Build it static: CGO_ENABLED=0 go build ./cmd/hearth-agent
package main

import "github.com/hearthvm/hearth/internal/agent"

func main() { agent.Main() }
