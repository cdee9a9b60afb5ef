package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// TarOut writes a tar (PAX) of the guest path to w: a directory's entries
// relative to it, or a single file under its base name. Devices, sockets,
// fifos and files that vanish while being archived are skipped and named
// in the result's warnings.
func (c *Client) TarOut(ctx context.Context, path string, w io.Writer) (*guestproto.FilesResult, error) {
	return c.TarOutExcluding(ctx, path, nil, w)
}

// TarOutExcluding is TarOut leaving out the entries that the gitignore
// patterns exclude match (relative to path); excluded directories are not
// entered.
func (c *Client) TarOutExcluding(ctx context.Context, path string, exclude []string, w io.Writer) (*guestproto.FilesResult, error) {
	req := &guestproto.Request{Op: guestproto.OpTarOut, Files: &guestproto.FilesRequest{Path: path, Exclude: exclude}}
	r, err := c.receiveData(ctx, req, "archive "+path, func(p []byte) error {
		_, err := w.Write(p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return filesResult(r), nil
}

// ReadFile writes n bytes (0: to the end) of a regular guest file from
// offset off to w.
func (c *Client) ReadFile(ctx context.Context, path string, off, n int64, w io.Writer) error {
	req := &guestproto.Request{Op: guestproto.OpReadFile, Files: &guestproto.FilesRequest{Path: path, Offset: off, Length: n}}
	_, err := c.receiveData(ctx, req, "read "+path, func(p []byte) error {
		_, err := w.Write(p)
		return err
	})
	return err
}

// CountLines counts the lines of a regular guest file and tells whether it
// is binary (a NUL in its first 8000 bytes, or not valid UTF-8), without
// sending its content. A file larger than limit bytes is an
// errdefs.ErrResourceExhausted error.
func (c *Client) CountLines(ctx context.Context, path string, limit int64) (lines int64, binary bool, err error) {
	req := &guestproto.Request{Op: guestproto.OpReadFile, Files: &guestproto.FilesRequest{Path: path, Length: limit + 1, Count: true}}
	r, err := c.receiveData(ctx, req, "read "+path, func([]byte) error { return nil })
	if err != nil {
		return 0, false, err
	}
	res := filesResult(r)
	if res.Bytes > limit {
		return 0, false, fmt.Errorf("read %s: larger than %d bytes: %w", path, limit, errdefs.ErrResourceExhausted)
	}
	return res.Lines, res.Binary, nil
}

// Manifest lists a guest tree (sorted by path, symlinks not followed, not
// crossing into other file systems). Regular files get a SHA-256 when hash
// is set and hashPaths is empty, or when listed in hashPaths.
func (c *Client) Manifest(ctx context.Context, path string, hash bool, hashPaths []string) (*guestproto.Manifest, error) {
	return c.ManifestExcluding(ctx, path, hash, hashPaths, nil)
}

// ManifestExcluding is Manifest leaving out the entries that the gitignore
// patterns exclude match (relative to path); excluded directories are not
// entered.
func (c *Client) ManifestExcluding(ctx context.Context, path string, hash bool, hashPaths, exclude []string) (*guestproto.Manifest, error) {
	var entries []guestproto.ManifestEntry
	req := &guestproto.Request{Op: guestproto.OpManifest, Files: &guestproto.FilesRequest{Path: path, Hash: hash, HashPaths: hashPaths, Exclude: exclude}}
	r, err := c.receiveData(ctx, req, "list "+path, func(p []byte) error {
		dec := json.NewDecoder(bytes.NewReader(p))
		for dec.More() {
			var e guestproto.ManifestEntry
			if err := dec.Decode(&e); err != nil {
				return fmt.Errorf("bad manifest entry from agent: %w: %w", err, errdefs.ErrInternal)
			}
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m := r.Manifest
	if m == nil {
		m = &guestproto.Manifest{Root: path}
	}
	if len(m.Entries) == 0 {
		m.Entries = entries
	}
	if m.Count != 0 && int64(len(m.Entries)) != m.Count {
		return nil, fmt.Errorf("list %s: agent announced %d entries but sent %d: %w", path, m.Count, len(m.Entries), errdefs.ErrInternal)
	}
	m.Count = 0
	return m, nil
}

// TarIn extracts the tar read from r into the guest directory path
// (created if missing). With del, entries under path that are neither in
// the tar nor listed in keep (relative paths) are deleted afterwards.
// Unsafe entries (absolute, "..", through symlinks, hard links out) fail
// the whole operation with an invalid-argument error naming the entry.
func (c *Client) TarIn(ctx context.Context, path string, r io.Reader, del bool, keep []string) (*guestproto.FilesResult, error) {
	return c.TarInExcluding(ctx, path, r, del, keep, nil)
}

// TarInExcluding is TarIn where, with del, entries that the gitignore
// patterns exclude match (relative to path) are never deleted.
func (c *Client) TarInExcluding(ctx context.Context, path string, r io.Reader, del bool, keep, exclude []string) (*guestproto.FilesResult, error) {
	what := "extract into " + path
	req := &guestproto.Request{Op: guestproto.OpTarIn, Files: &guestproto.FilesRequest{Path: path, Delete: del, Keep: keep, Exclude: exclude}}
	conn, err := c.Open(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	sendErr := make(chan error, 1)
	go func() {
		buf := make([]byte, guestproto.ChunkSize)
		for {
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				if conn.WriteFrame(guestproto.FrameData, buf[:n]) != nil {
					sendErr <- nil // the agent ended the stream; its response tells why
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				conn.WriteFrame(guestproto.FrameDataEOF, nil)
				sendErr <- nil
				return
			}
			if err != nil {
				sendErr <- fmt.Errorf("%s: read archive: %w", what, err)
				conn.Close() // abort: the agent sees the stream end mid-archive
				return
			}
		}
	}()
	for {
		t, p, err := conn.ReadFrame()
		if err != nil {
			select {
			case serr := <-sendErr:
				if serr != nil {
					return nil, serr
				}
			default:
			}
			return nil, lostStreamErr(ctx, what, err)
		}
		if t == guestproto.FrameJSON {
			resp, err := DecodeResponse(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			return filesResult(resp), nil
		}
	}
}

// receiveData sends req and hands every FrameData payload to data until
// the final response.
func (c *Client) receiveData(ctx context.Context, req *guestproto.Request, what string, data func([]byte) error) (*guestproto.Response, error) {
	conn, err := c.Open(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	for {
		t, p, err := conn.ReadFrame()
		if err != nil {
			return nil, lostStreamErr(ctx, what, err)
		}
		switch t {
		case guestproto.FrameData:
			if err := data(p); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		case guestproto.FrameJSON:
			resp, err := DecodeResponse(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			return resp, nil
		}
	}
}

func filesResult(r *guestproto.Response) *guestproto.FilesResult {
	if r.Files == nil {
		return &guestproto.FilesResult{}
	}
	return r.Files
}
