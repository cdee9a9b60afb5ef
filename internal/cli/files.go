package cli

import (
	"context"
	"fmt"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/fsdiff"
	"github.com/spf13/cobra"
)

func init() {
	workspaceCommands = append(workspaceCommands, newWSSync, newWSDiff, newWSExport)
}

func newWSSync(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sync", Short: "Push host files into a workspace"}
	var o hearth.SyncOptions
	push := &cobra.Command{
		Use:   "push WS SRC",
		Short: "Push a host directory into the workspace (only changed files cross)",
		Long: `Push the host directory SRC into the workspace (default /workspace, or --dest under
it). Only entries whose type, mode, size, mtime or symlink target differ cross, and
mtimes are kept, so pushing an unchanged tree again sends nothing. --delete removes
guest files under the destination that are gone from SRC. --exclude PATTERN
(gitignore syntax, repeatable, relative to SRC) leaves paths out: they are not
sent, and --delete keeps the guest's copies of them. SRC is read under the seed
rules: a symlink that is absolute or leaves SRC fails the push unless excluded.
The baseline is never changed, and nothing appears in the command log.`,
		Example: `  hearth workspace sync push demo ./project
  hearth workspace sync push demo ./project --exclude .venv/ --exclude '*.pyc'
  hearth workspace sync push demo ./project/src --dest /workspace/src --delete`,
		Args: exactArgs(2, "WS and SRC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Workspace(args[0]).SyncPush(cmd.Context(), args[1], o)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(g.stderr, "hearth: warning: %s\n", w)
			}
			fmt.Fprintf(g.stdout, "pushed %d of %d entries (%s) to %s", r.Sent, r.Scanned, humanBytes(r.Bytes), r.Dest)
			if o.Delete {
				fmt.Fprintf(g.stdout, ", deleted %d", r.Deleted)
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	push.Flags().StringVar(&o.Dest, "dest", "/workspace", "guest directory to push into (under /workspace)")
	push.Flags().BoolVar(&o.Delete, "delete", false, "delete guest files that are gone from SRC")
	push.Flags().StringArrayVar(&o.Exclude, "exclude", nil, "leave out paths matching this gitignore pattern (repeatable)")
	cmd.AddCommand(push)
	return cmd
}

func newWSDiff(g *globals) *cobra.Command {
	var stat, patch bool
	var o hearth.DiffOptions
	cmd := &cobra.Command{
		Use:   "diff WS [PATH...]",
		Short: "Compare the live /workspace with its create-time baseline",
		Long: `Compare the live /workspace with the immutable baseline recorded at create. Each
changed path has a status (added, modified, deleted, type_changed, mode_changed),
old and new mode and size, whether it is binary, and a unified patch for text files.
Human output looks like 'git diff' (--stat like 'git diff --stat'); --json gives
{"files": [...], "summary": {...}} in path order. PATHs (relative to /workspace)
limit the diff; --exclude PATTERN (gitignore syntax, repeatable, relative to
/workspace) leaves paths out. A file larger than --max-patch-bytes (default 1 MiB)
gets no patch, and patches stop after --max-total-patch-bytes (default 16 MiB) in
all; such files say why in patch_omitted. Diff never appears in the command log and
never touches a shell.`,
		Example: `  hearth workspace diff demo
  hearth workspace diff demo --stat
  hearth workspace diff demo --exclude __pycache__/ --exclude '*.log'
  hearth workspace diff demo src/ --json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			o.Paths, o.NoPatch = args[1:], stat && !patch
			r, err := diffAll(cmd.Context(), c.Workspace(args[0]), o)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			if stat {
				if err := fsdiff.FormatStat(g.stdout, r); err != nil {
					return err
				}
				if !patch {
					return nil
				}
			}
			return fsdiff.FormatGit(g.stdout, r)
		},
	}
	cmd.Flags().BoolVar(&stat, "stat", false, "print a diffstat (like git diff --stat)")
	cmd.Flags().BoolVar(&patch, "patch", false, "print patches (the default without --stat; with --stat, both)")
	cmd.Flags().StringArrayVar(&o.Exclude, "exclude", nil, "leave out paths matching this gitignore pattern (repeatable)")
	cmd.Flags().Int64Var(&o.MaxPatchBytes, "max-patch-bytes", fsdiff.DefaultMaxPatchBytes, "largest file (and patch) shown as a patch, in bytes")
	cmd.Flags().Int64Var(&o.MaxTotalPatchBytes, "max-total-patch-bytes", fsdiff.DefaultMaxTotalPatchBytes, "most patch text in one diff, in bytes")
	return cmd
}

// diffAll reads every page of a diff into one result, the patch budget
// shared across the pages.
func diffAll(ctx context.Context, ws *hearth.Workspace, o hearth.DiffOptions) (*hearth.DiffResult, error) {
	budget := o.MaxTotalPatchBytes
	var all *hearth.DiffResult
	for {
		r, err := ws.Diff(ctx, o)
		if err != nil {
			return nil, err
		}
		if all == nil {
			all = r
		} else {
			all.Files = append(all.Files, r.Files...)
			a, b := &all.Summary, r.Summary
			a.Added += b.Added
			a.Modified += b.Modified
			a.Deleted += b.Deleted
			a.TypeChanged += b.TypeChanged
			a.ModeChanged += b.ModeChanged
			a.Files += b.Files
			a.Insertions += b.Insertions
			a.Deletions += b.Deletions
		}
		if r.NextOffset == 0 {
			all.NextOffset = 0
			return all, nil
		}
		if budget > 0 {
			for _, f := range r.Files {
				budget -= int64(len(f.Patch))
			}
			// 1 byte keeps later patches out ("diff too large"); 0 would
			// mean the default again.
			o.MaxTotalPatchBytes = max(budget, 1)
		}
		o.Offset = r.NextOffset
	}
}

func newWSExport(g *globals) *cobra.Command {
	var o hearth.ExportOptions
	cmd := &cobra.Command{
		Use:   "export WS GUEST_PATH HOST_DEST",
		Short: "Copy a file or directory out of /workspace to the host",
		Long: `Copy GUEST_PATH (under /workspace; relative paths are taken from /workspace) into a
new host directory HOST_DEST, or into a tar archive with --archive (.tar, .tar.gz or
.tgz by HOST_DEST's name). A non-empty destination is refused unless --force, which
replaces it atomically; the destination appears whole or not at all. Symlinks stay
symlinks and are never written through; device nodes and the like are skipped with a
warning. setuid, setgid, sticky and world-write bits are dropped unless
--preserve-mode. --exclude PATTERN (gitignore syntax, repeatable, relative to
GUEST_PATH) leaves paths out. Export never appears in the command log and never
touches a shell.`,
		Example: `  hearth workspace export demo /workspace/dist ./dist
  hearth workspace export demo src ./src.tar.gz --archive --exclude node_modules/`,
		Args: exactArgs(3, "WS, GUEST_PATH and HOST_DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Workspace(args[0]).Export(cmd.Context(), args[1], args[2], o)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(g.stderr, "hearth: warning: %s\n", w)
			}
			fmt.Fprintf(g.stdout, "exported %s to %s: %d files, %d dirs, %d symlinks, %s\n", r.GuestPath, r.HostPath, r.Files, r.Dirs, r.Symlinks, humanBytes(r.Bytes))
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.Archive, "archive", false, "write a tar archive (.tar, .tar.gz, .tgz) instead of a directory")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace a non-empty destination")
	cmd.Flags().BoolVar(&o.PreserveMode, "preserve-mode", false, "keep setuid, setgid, sticky and world-write bits")
	cmd.Flags().StringArrayVar(&o.Exclude, "exclude", nil, "leave out paths matching this gitignore pattern (repeatable)")
	return cmd
}
