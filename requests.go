package hearth

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// Conversions from the JSON request shapes (package api) that the HTTP API
// and the MCP server accept into SDK options, so both apply the same
// defaults and checks.

// ExecOptionsFrom converts an api.ExecRequest. Output is captured.
func ExecOptionsFrom(r api.ExecRequest) (ExecOptions, error) {
	o := ExecOptions{Argv: r.Argv, Shell: r.Command, Cwd: r.Cwd, Env: r.Env, Capture: true, Detach: r.Detach}
	if r.TimeoutMS < 0 || r.YieldMS < 0 {
		return o, fmt.Errorf("timeout_ms and yield_ms must not be negative: %w", errdefs.ErrInvalidArgument)
	}
	o.Timeout = time.Duration(r.TimeoutMS) * time.Millisecond
	o.Yield = time.Duration(r.YieldMS) * time.Millisecond
	if r.Stdin != "" {
		o.Stdin = strings.NewReader(r.Stdin)
	}
	return o, nil
}

// CreateOptionsFrom converts an api.CreateRequest.
func CreateOptionsFrom(r api.CreateRequest) (CreateOptions, error) {
	o := CreateOptions{Name: r.Name, Image: r.Image, Backend: r.Backend, CPUs: r.CPUs, MemoryMiB: r.MemoryMiB, Seed: r.Seed}
	if r.DiskSize != "" {
		n, err := ParseSize(r.DiskSize)
		if err != nil {
			return o, fmt.Errorf("disk_size: %w", err)
		}
		o.DiskSize = n
	}
	return o, nil
}

// RunOptionsFrom converts an api.RunRequest.
func RunOptionsFrom(r api.RunRequest) (RunOptions, error) {
	e, err := ExecOptionsFrom(r.ExecRequest)
	if err != nil {
		return RunOptions{}, err
	}
	if e.Detach || e.Yield > 0 {
		return RunOptions{}, fmt.Errorf("run does not take detach or yield_ms (a throwaway VM ends with its command): use a workspace: %w", errdefs.ErrInvalidArgument)
	}
	return RunOptions{Image: r.Image, Backend: r.Backend, CPUs: r.CPUs, MemoryMiB: r.MemoryMiB, Exec: e}, nil
}

// ShellWriteData returns the bytes of an api.ShellWriteRequest.
func ShellWriteData(r api.ShellWriteRequest) ([]byte, error) {
	if r.Data != "" && r.DataBase64 != "" {
		return nil, fmt.Errorf("give data or data_base64, not both: %w", errdefs.ErrInvalidArgument)
	}
	if r.DataBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(r.DataBase64)
		if err != nil {
			return nil, fmt.Errorf("data_base64: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		return b, nil
	}
	return []byte(r.Data), nil
}

// ParseSize parses sizes like 512M, 8G, 10GiB, 1T or plain bytes.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(strings.ToUpper(s))
	num = strings.TrimSuffix(strings.TrimSuffix(num, "IB"), "B")
	for _, u := range []struct {
		suf string
		m   int64
	}{{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}} {
		if strings.HasSuffix(num, u.suf) {
			mult, num = u.m, strings.TrimSuffix(num, u.suf)
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != num {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M, G or T suffix (e.g. 10G): %w", s, errdefs.ErrInvalidArgument)
	}
	return n * mult, nil
}
