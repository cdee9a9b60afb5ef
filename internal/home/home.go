// Package home locates hearth's state directory and the paths inside it.
//
// Layout under $HEARTH_HOME (default ${XDG_DATA_HOME:-$HOME/.local/share}/hearth):
//
//	images/<name>/         image.json, vmlinux, rootfs.ext4
//	cache/                 build caches keyed by their inputs (kernels, rootfs, initrds, probes)
//	workspaces/<id>/       workspace.json, disk.ext4, baseline, logs, run/ (sockets, console)
//	run/<id>/              throwaway VMs of `hearth run`
package home

import (
	"os"
	"path/filepath"
)

// Dir returns the state directory: $HEARTH_HOME, else
// ${XDG_DATA_HOME:-$HOME/.local/share}/hearth.
func Dir() string {
	if d := os.Getenv("HEARTH_HOME"); d != "" {
		return abs(d)
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(abs(x), "hearth")
	}
	h, err := os.UserHomeDir()
	if err != nil || h == "" {
		h = "/root"
	}
	return filepath.Join(h, ".local", "share", "hearth")
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Images is where built and imported images live.
func Images(root string) string { return filepath.Join(root, "images") }

// Cache is where build caches live.
func Cache(root string) string { return filepath.Join(root, "cache") }

// Workspaces is where workspaces live.
func Workspaces(root string) string { return filepath.Join(root, "workspaces") }

// Runs is where throwaway VMs of `hearth run` live while they run.
func Runs(root string) string { return filepath.Join(root, "run") }
