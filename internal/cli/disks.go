package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, newDiskCmd)
	workspaceCommands = append(workspaceCommands, newWSFiles, newWSDisk)
}

// filesCmds builds `files ls|cat|get` for a workspace or a disk: what
// names the thing read, and the calls that read it.
type filesTarget struct {
	what    string // "WS" or "DISK"
	pathDef string
	list    func(c *hearth.Client, cmd *cobra.Command, ref, p string) (*api.FilesListResult, error)
	cat     func(c *hearth.Client, cmd *cobra.Command, ref, p string, off, n int64, g *globals) error
	get     func(c *hearth.Client, cmd *cobra.Command, ref, p, dest string, force bool) (*api.FilesGetResult, error)
}

func newFilesCmd(g *globals, t filesTarget, long string) *cobra.Command {
	cmd := &cobra.Command{Use: "files", Short: "Read files without booting (ls, cat, get)", Long: long}
	ls := &cobra.Command{
		Use:   "ls " + t.what + " [PATH]",
		Short: "List a directory (default " + t.pathDef + ")",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p := t.pathDef
			if len(args) == 2 {
				p = args[1]
			}
			r, err := t.list(c, cmd, args[0], p)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(g.stderr, "hearth: warning: %s\n", w)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 1, ' ', tabwriter.AlignRight)
			for _, e := range r.Entries {
				name := e.Name
				switch e.Type {
				case "dir":
					name += "/"
				case "symlink":
					name += " -> " + e.Target
				}
				fmt.Fprintf(tw, "%s %s\t%d\t %s\t %s\n", typeChar(e.Type), e.Mode, e.Size, e.Mtime.Format("2006-01-02 15:04"), name)
			}
			return tw.Flush()
		},
	}
	var off, limit int64
	cat := &cobra.Command{
		Use:   "cat " + t.what + " PATH",
		Short: "Write a file to standard output (symlinks followed)",
		Args:  exactArgs(2, t.what+" and PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return t.cat(c, cmd, args[0], args[1], off, limit, g)
		},
	}
	cat.Flags().Int64Var(&off, "offset", 0, "byte offset to start at")
	cat.Flags().Int64Var(&limit, "limit", 0, "bytes to read at most (0: to the end)")
	var force bool
	get := &cobra.Command{
		Use:   "get " + t.what + " PATH HOST_DEST",
		Short: "Copy a file or directory to a new host path",
		Long: `Copy PATH to HOST_DEST on the host: a file becomes the file HOST_DEST, a directory the
directory HOST_DEST. HOST_DEST must not exist or be empty unless --force, which
replaces it whole; it appears whole or not at all, and nothing is written through a
symlink. setuid, setgid, sticky and world-write bits are dropped.`,
		Args: exactArgs(3, t.what+", PATH and HOST_DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := t.get(c, cmd, args[0], args[1], args[2], force)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(g.stderr, "hearth: warning: %s\n", w)
			}
			fmt.Fprintf(g.stdout, "copied %s to %s: %d files, %d dirs, %d symlinks, %s (read from the %s)\n", r.Path, r.HostPath, r.Files, r.Dirs, r.Symlinks, humanBytes(r.Bytes), r.Source)
			return nil
		},
	}
	get.Flags().BoolVar(&force, "force", false, "replace a non-empty destination")
	cmd.AddCommand(ls, cat, get)
	return cmd
}

func typeChar(t string) string {
	switch t {
	case "dir":
		return "d"
	case "symlink":
		return "l"
	case "file":
		return "-"
	}
	return "?"
}

func newWSFiles(g *globals) *cobra.Command {
	return newFilesCmd(g, filesTarget{
		what: "WS", pathDef: "/workspace",
		list: func(c *hearth.Client, cmd *cobra.Command, ref, p string) (*api.FilesListResult, error) {
			return c.Workspace(ref).FilesList(cmd.Context(), p)
		},
		cat: func(c *hearth.Client, cmd *cobra.Command, ref, p string, off, n int64, g *globals) error {
			_, err := c.Workspace(ref).FilesCat(cmd.Context(), p, off, n, g.stdout)
			return err
		},
		get: func(c *hearth.Client, cmd *cobra.Command, ref, p, dest string, force bool) (*api.FilesGetResult, error) {
			return c.Workspace(ref).FilesGet(cmd.Context(), p, dest, force)
		},
	}, `Read a workspace's files. A stopped workspace is not booted: its disks are read on the
host and merged the way the guest's overlay merges them (files the guest deleted do
not show; /workspace and attached data disks appear at their paths). A running
workspace is read through its agent, with the same results. Relative paths are taken
from /workspace.`)
}

func newWSDisk(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "disk", Short: "Attach and detach named data disks"}
	var path string
	var ro bool
	attach := &cobra.Command{
		Use:   "attach WS DISK",
		Short: "Attach a data disk to a stopped workspace (mounted from its next start)",
		Long: `Attach DISK to the stopped workspace WS; the guest mounts it at --path (default
/mnt/DISK) from the next start on, and attachments survive stop and start. A disk is
attached writable to one workspace, or read-only (--ro) to many; a conflicting attach
fails naming the workspace that holds the disk. Hot-attach is not supported.`,
		Example: `  hearth workspace disk attach demo cache --path /mnt/cache
  hearth workspace disk attach demo corpus --ro`,
		Args: exactArgs(2, "WS and DISK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.Workspace(args[0]).AttachDisk(cmd.Context(), hearth.DiskAttachOptions{Disk: args[1], Path: path, ReadOnly: ro})
			if err != nil {
				return err
			}
			return g.printWorkspace(w)
		},
	}
	attach.Flags().StringVar(&path, "path", "", "guest path to mount it at (default /mnt/DISK)")
	attach.Flags().BoolVar(&ro, "ro", false, "attach read-only (any number of workspaces may)")
	detach := &cobra.Command{
		Use:   "detach WS DISK",
		Short: "Detach a data disk from a stopped workspace",
		Args:  exactArgs(2, "WS and DISK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.Workspace(args[0]).DetachDisk(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			return g.printWorkspace(w)
		},
	}
	cmd.AddCommand(attach, detach)
	return cmd
}

func (g *globals) printDisk(d *api.Disk) error {
	if g.json {
		return g.printJSON(d)
	}
	fmt.Fprintf(g.stdout, "%s\t%s (%s used in the file system, %s on the host)\n", d.Name, humanBytes(d.SizeBytes), humanBytes(d.FSUsedBytes), humanBytes(d.UsedBytes))
	for _, a := range d.Attachments {
		mode := "rw"
		if a.ReadOnly {
			mode = "ro"
		}
		fmt.Fprintf(g.stdout, "  attached to %s at %s (%s)\n", a.Workspace, a.Path, mode)
	}
	return nil
}

func newDiskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disk",
		Short: "Named data disks: create, attach to workspaces, read without booting",
		Long: `Named data disks are ext4 disks that outlive workspaces: a package cache, a model, a
corpus. Attach one to workspaces with 'workspace create --disk NAME:/mnt/PATH[:ro]' or
'workspace disk attach': writable to one workspace, or read-only to many.`,
	}
	var size, from string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a sparse ext4 disk, optionally filled from a host directory or archive",
		Long: `Create the data disk NAME of --size (sparse). --from fills it from a host directory or
archive (.tar, .tar.gz, .tgz, .zip), validated like a seed: an entry that leaves it
(an absolute symlink, "..") fails the create before anything is written.`,
		Example: `  hearth disk create cache --size 4G
  hearth disk create corpus --size 2G --from ./corpus`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.CreateDisk(cmd.Context(), hearth.DiskCreateOptions{Name: args[0], Size: n, From: from})
			if err != nil {
				return err
			}
			return g.printDisk(d)
		},
	}
	create.Flags().StringVar(&size, "size", "1G", "size (sparse), e.g. 8G, 512M")
	create.Flags().StringVar(&from, "from", "", "host directory or archive to fill it from")
	list := &cobra.Command{
		Use: "list", Short: "List data disks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListDisks(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(api.DiskList{Disks: l})
			}
			for i := range l {
				g.printDisk(&l[i])
			}
			return nil
		},
	}
	one := func(use, short string, call func(c *hearth.Client, cmd *cobra.Command, name string) (*api.Disk, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: short, Args: exactArgs(1, "NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				d, err := call(c, cmd, args[0])
				if err != nil {
					return err
				}
				return g.printDisk(d)
			},
		}
	}
	show := one("show", "Show a data disk", func(c *hearth.Client, cmd *cobra.Command, name string) (*api.Disk, error) {
		return c.Disk(cmd.Context(), name)
	})
	rm := one("rm", "Remove a detached data disk and its files", func(c *hearth.Client, cmd *cobra.Command, name string) (*api.Disk, error) {
		return c.DeleteDisk(cmd.Context(), name)
	})
	var newSize string
	resize := one("resize", "Grow a detached data disk", func(c *hearth.Client, cmd *cobra.Command, name string) (*api.Disk, error) {
		n, err := parseSize(newSize)
		if err != nil {
			return nil, fmt.Errorf("--size: %w", err)
		}
		return c.ResizeDisk(cmd.Context(), name, n)
	})
	resize.Flags().StringVar(&newSize, "size", "", "new size, larger than the current one")
	var archiveOut, force bool
	export := &cobra.Command{
		Use:   "export NAME HOST_DEST",
		Short: "Copy a disk's files to a new host directory (or archive with --archive)",
		Args:  exactArgs(2, "NAME and HOST_DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.ExportDisk(cmd.Context(), args[0], args[1], archiveOut, force)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			fmt.Fprintf(g.stdout, "exported disk %s to %s: %d files, %d dirs, %d symlinks, %s\n", args[0], r.HostPath, r.Files, r.Dirs, r.Symlinks, humanBytes(r.Bytes))
			return nil
		},
	}
	export.Flags().BoolVar(&archiveOut, "archive", false, "write a tar archive (.tar, .tar.gz, .tgz) instead of a directory")
	export.Flags().BoolVar(&force, "force", false, "replace a non-empty destination")
	importCmd := &cobra.Command{
		Use:   "import NAME SRC",
		Short: "Replace a detached disk's files with a host directory or archive",
		Args:  exactArgs(2, "NAME and SRC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.ImportDisk(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return g.printDisk(d)
		},
	}
	var repair bool
	check := &cobra.Command{
		Use:   "check NAME",
		Short: "Check a disk's file system (e2fsck -n; --repair fixes, detached only)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.CheckDisk(cmd.Context(), args[0], repair)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			fmt.Fprintln(g.stdout, strings.TrimSpace(r.Output))
			switch {
			case r.Repaired:
				fmt.Fprintf(g.stdout, "disk %s: repaired\n", r.Disk)
			case r.Clean:
				fmt.Fprintf(g.stdout, "disk %s: clean\n", r.Disk)
			default:
				fmt.Fprintf(g.stdout, "disk %s: has errors: run `hearth disk check %s --repair` on it detached\n", r.Disk, r.Disk)
				return &exitError{code: 1}
			}
			return nil
		},
	}
	check.Flags().BoolVar(&repair, "repair", false, "fix what is safe to fix (the disk must be detached)")
	files := newFilesCmd(g, filesTarget{
		what: "DISK", pathDef: "/",
		list: func(c *hearth.Client, cmd *cobra.Command, ref, p string) (*api.FilesListResult, error) {
			return c.DiskFilesList(cmd.Context(), ref, p)
		},
		cat: func(c *hearth.Client, cmd *cobra.Command, ref, p string, off, n int64, g *globals) error {
			_, err := c.DiskFilesCat(cmd.Context(), ref, p, off, n, g.stdout)
			return err
		},
		get: func(c *hearth.Client, cmd *cobra.Command, ref, p, dest string, force bool) (*api.FilesGetResult, error) {
			return c.DiskFilesGet(cmd.Context(), ref, p, dest, force)
		},
	}, `Read a data disk's files on the host (through the agent of the running workspace it is
attached writable to, if any). Paths are taken from the disk's root.`)
	cmd.AddCommand(create, list, show, rm, resize, export, importCmd, check, files)
	return cmd
}
