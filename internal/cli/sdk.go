package cli

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/spf13/cobra"
)

// client builds the SDK client for this invocation.
func (g *globals) client() (*hearth.Client, error) {
	remote := g.remote
	if remote == "" {
		remote = os.Getenv("HEARTH_REMOTE")
	}
	if remote != "" {
		return hearth.New(hearth.WithRemote(remote, os.Getenv("HEARTH_TOKEN")))
	}
	opts := []hearth.Option{hearth.WithHome(g.home), hearth.WithExecutable(selfExe())}
	// HEARTH_BOOT_TIMEOUT is a developer knob (tests use it to fail fast).
	if v := os.Getenv("HEARTH_BOOT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("HEARTH_BOOT_TIMEOUT=%q: %v: %w", v, err, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, hearth.WithBootTimeout(d))
	}
	return hearth.New(opts...)
}

func selfExe() string {
	if p := os.Getenv("HEARTH_BIN"); p != "" {
		return p
	}
	exe, _ := os.Executable()
	return exe
}

// parseEnv checks K=V entries.
func parseEnv(env []string) ([]string, error) {
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE: %w", e, errdefs.ErrInvalidArgument)
		}
	}
	return env, nil
}

// parseSize parses 512M, 10G, 1T, or bytes.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return hearth.ParseSize(s)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func isUTF8(b []byte) bool { return utf8.Valid(b) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// checkMachineFlags rejects explicit --cpus/--memory values the SDK would
// otherwise read as "use the default" (0).
func checkMachineFlags(cmd *cobra.Command, cpus, mem int) error {
	if cmd.Flags().Changed("cpus") && cpus < 1 {
		return fmt.Errorf("--cpus %d: want 1 to 32: %w", cpus, errdefs.ErrInvalidArgument)
	}
	if cmd.Flags().Changed("memory") && mem < 1 {
		return fmt.Errorf("--memory %d MiB is too small: the guest needs at least 128 MiB: %w", mem, errdefs.ErrInvalidArgument)
	}
	return nil
}
