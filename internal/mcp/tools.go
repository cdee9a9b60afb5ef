package mcp

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
)

// summarize returns the text content of a tool result: a short account a
// model reads before (or instead of) the structured result. Operations
// without an entry get a generic line.
var summarize = map[string]func(res any) string{
	"run":            func(r any) string { return execSummary(r.(*api.ExecResult)) },
	"workspace_exec": func(r any) string { return execSummary(r.(*api.ExecResult)) },
	"command_wait":   func(r any) string { return execSummary(r.(*api.ExecResult)) },
	"command_kill":   func(r any) string { return execSummary(r.(*api.ExecResult)) },
	"workspace_create": func(r any) string {
		i := r.(*api.Workspace)
		s := fmt.Sprintf("Created workspace %s (id %s, image %s, %s/%s), %s.", i.Name, i.ID, i.Image, i.Backend, i.Accel, i.State)
		if i.Seed != "" {
			s += fmt.Sprintf(" /workspace was seeded from %s (the baseline for workspace_diff).", i.Seed)
		}
		return s + fmt.Sprintf(" Next: workspace_exec or shell_open with workspace=%q.", i.Name)
	},
	"workspace_list": func(r any) string {
		l := r.(*api.WorkspaceList).Workspaces
		var b strings.Builder
		fmt.Fprintf(&b, "%d workspace(s)", len(l))
		for _, w := range l {
			fmt.Fprintf(&b, "\n%s (%s): %s", w.Name, w.ID, w.State)
		}
		return b.String()
	},
	"workspace_show":  func(r any) string { return wsSummary("is", r.(*api.Workspace)) },
	"workspace_start": func(r any) string { return wsSummary("started", r.(*api.Workspace)) },
	"workspace_stop":  func(r any) string { return wsSummary("stopped", r.(*api.Workspace)) },
	"workspace_delete": func(r any) string {
		i := r.(*api.Workspace)
		return fmt.Sprintf("Deleted workspace %s (%s) and all its files.", i.Name, i.ID)
	},
	"workspace_logs": func(r any) string {
		l := r.(*api.CommandList).Commands
		var b strings.Builder
		fmt.Fprintf(&b, "%d command(s)", len(l))
		for _, c := range l {
			what := c.Shell
			if what == "" {
				what = strings.Join(c.Argv, " ")
			}
			code := ""
			if c.ExitCode != nil {
				code = fmt.Sprintf(" exit %d", *c.ExitCode)
			}
			fmt.Fprintf(&b, "\n%s %s%s: %s", c.ID, c.Status, code, preview(what, 80))
		}
		return b.String()
	},
	"workspace_sync_push": func(r any) string {
		x := r.(*api.SyncResult)
		s := fmt.Sprintf("Pushed %d of %d files (%d bytes) from %s to %s", x.Sent, x.Scanned, x.Bytes, x.Source, x.Dest)
		if x.Deleted > 0 {
			s += fmt.Sprintf(", deleted %d", x.Deleted)
		}
		return s + "." + warnings(x.Warnings)
	},
	"workspace_diff": func(r any) string { return diffSummary(r.(*api.DiffResult)) },
	"workspace_export": func(r any) string {
		x := r.(*api.ExportResult)
		return fmt.Sprintf("Exported %s to %s: %d files, %d dirs, %d symlinks, %d bytes.", x.GuestPath, x.HostPath, x.Files, x.Dirs, x.Symlinks, x.Bytes) + warnings(x.Warnings)
	},
	"command_read": func(r any) string {
		o := r.(*api.CommandOutput)
		s := fmt.Sprintf("%s of %s, bytes %d to %d of %d (%s).", o.Stream, o.CommandID, o.Offset, o.NextOffset, o.TotalBytes, o.Status)
		switch {
		case o.NextOffset < o.TotalBytes:
			s += fmt.Sprintf(" More: command_read offset=%d.", o.NextOffset)
		case o.Status == api.StatusRunning:
			s += " The command is still running: read again later from next_offset, or command_wait."
		}
		if o.Encoding == "" && o.Data != "" {
			s += "\n" + preview(o.Data, 4096)
		}
		return s
	},
	"shell_open": func(r any) string {
		sh := r.(*api.Shell)
		return shellSummary("opened", sh) + fmt.Sprintf(" Next: shell_write then shell_read with shell_id=%q.", sh.ID)
	},
	"shell_write": func(r any) string {
		sh := r.(*api.Shell)
		return fmt.Sprintf("Sent to shell %s (%s). Read the output with shell_read.", sh.ID, sh.State)
	},
	"shell_read": func(r any) string {
		o := r.(*api.ShellOutput)
		s := fmt.Sprintf("Shell output %d to %d (%s).", o.Cursor, o.NextCursor, o.State)
		if o.DroppedBytes > 0 {
			s += fmt.Sprintf(" %d bytes were dropped before this read.", o.DroppedBytes)
		}
		if o.Encoding == "" && o.Output != "" {
			s += "\n" + preview(o.Output, 4096)
		}
		return s
	},
	"shell_resize": func(r any) string { return shellSummary("resized", r.(*api.Shell)) },
	"shell_signal": func(r any) string { return shellSummary("signalled", r.(*api.Shell)) },
	"shell_close":  func(r any) string { return shellSummary("closed", r.(*api.Shell)) },
	"shell_list": func(r any) string {
		l := r.(*api.ShellList).Shells
		var b strings.Builder
		fmt.Fprintf(&b, "%d shell(s)", len(l))
		for _, s := range l {
			fmt.Fprintf(&b, "\n%s: %s", s.ID, s.State)
		}
		return b.String()
	},
}

func warnings(w []string) string {
	if len(w) == 0 {
		return ""
	}
	return fmt.Sprintf(" %d warning(s): %s", len(w), listShort(w))
}

func wsSummary(verb string, i *api.Workspace) string {
	s := fmt.Sprintf("Workspace %s (%s) %s: state %s", i.Name, i.ID, verb, i.State)
	if i.Error != "" {
		s += ", error: " + i.Error
	}
	return s + "."
}

func shellSummary(verb string, s *api.Shell) string {
	out := fmt.Sprintf("Shell %s %s: %s, %dx%d, %d bytes of output so far", s.ID, verb, s.State, s.Cols, s.Rows, s.OutputBytes)
	if s.ExitCode != nil {
		out += fmt.Sprintf(", exit code %d", *s.ExitCode)
	}
	return out + "."
}

func diffSummary(r *api.DiffResult) string {
	var b strings.Builder
	sm := r.Summary
	if len(r.Files) == 0 {
		return "No changes against the baseline."
	}
	fmt.Fprintf(&b, "%d path(s) changed (+%d -%d lines): %d added, %d modified, %d deleted, %d type changed, %d mode changed.",
		len(r.Files), sm.Insertions, sm.Deletions, sm.Added, sm.Modified, sm.Deleted, sm.TypeChanged, sm.ModeChanged)
	for i, f := range r.Files {
		if i == 30 {
			fmt.Fprintf(&b, "\n... and %d more", len(r.Files)-i)
			break
		}
		fmt.Fprintf(&b, "\n%s %s", f.Status, f.Path)
		if f.Insertions+f.Deletions > 0 {
			fmt.Fprintf(&b, " (+%d -%d)", f.Insertions, f.Deletions)
		}
		if f.PatchOmitted != "" {
			fmt.Fprintf(&b, " [patch: %s]", f.PatchOmitted)
		}
	}
	return b.String()
}

// execSummary is the text of a command result: status, then the end of
// each stream.
func execSummary(r *api.ExecResult) string {
	var b strings.Builder
	if r.Status == api.StatusRunning {
		fmt.Fprintf(&b, "Command %s is still running after %d ms (not an error): command_wait to wait more, command_read to page its output, command_kill to stop it.", r.CommandID, r.DurationMS)
	} else {
		fmt.Fprintf(&b, "Command %s %s with exit code %d in %d ms", r.CommandID, r.Reason, r.ExitCode, r.DurationMS)
		if r.Signal != "" {
			fmt.Fprintf(&b, " (signal %s)", r.Signal)
		}
		if r.TimedOut {
			b.WriteString(" (timed out)")
		}
		b.WriteString(".")
	}
	if r.Message != "" {
		b.WriteString(" " + r.Message)
	}
	for _, st := range []struct {
		name, data, enc string
		off, total      int64
	}{{"stdout", r.Stdout, r.StdoutEncoding, r.StdoutOffset, r.StdoutBytes}, {"stderr", r.Stderr, r.StderrEncoding, r.StderrOffset, r.StderrBytes}} {
		switch {
		case st.data == "":
		case st.enc != "":
			fmt.Fprintf(&b, "\n%s: %d bytes from offset %d, %s-encoded (see structured %s).", st.name, len(st.data), st.off, st.enc, st.name)
		default:
			fmt.Fprintf(&b, "\n--- %s (end) ---\n%s", st.name, preview(st.data, 2048))
		}
		if st.off > 0 {
			fmt.Fprintf(&b, "\n(%s: the first %d of %d bytes are left out here: read them with command_read command_id=%q stream=%q offset=0)", st.name, st.off, st.total, r.CommandID, st.name)
		}
	}
	return b.String()
}

// preview returns the last n bytes of s (on a UTF-8 boundary), marked when
// cut.
func preview(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}
