package egress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/hearthvm/hearth/internal/secrets"
)

// Limits on what the rewriter buffers: a request's head, one chunk-size
// line.
const (
	maxHead      = 64 << 10
	maxChunkLine = 4 << 10
)

// errHeadTooLarge ends a connection whose request head exceeds maxHead.
var errHeadTooLarge = fmt.Errorf("request head larger than %d bytes", maxHead)

// rewriter copies a client's HTTP/1.1 requests to the upstream, one after
// another (keep-alive and pipelining), putting brokered values in place of
// placeholders in the configured headers of requests to host. Everything
// else (the request line, other headers, bodies, chunk framing, trailers)
// is copied byte for byte. Responses do not pass here.
type rewriter struct {
	broker *secrets.Broker
	// name is the server name the connection is for (TLS SNI or the
	// sniffed Host), port its port: a request whose Host header names
	// another host gets no substitution.
	name string
	port uint16
	// substituted counts the header values changed.
	substituted int
}

// copy forwards requests from r to w until r ends at a request boundary
// (nil) or something fails. It returns the bytes written.
func (rw *rewriter) copy(w io.Writer, r *bufio.Reader) (int64, error) {
	cw := &countWriter{w: w}
	for {
		head, err := readHead(r)
		if err != nil {
			if errors.Is(err, io.EOF) && len(head) == 0 {
				return cw.n, nil
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return cw.n, err
		}
		req, out := rw.rewriteHead(head)
		if _, err := cw.Write(out); err != nil {
			return cw.n, err
		}
		switch {
		case req.tunnel:
			// CONNECT or an upgrade (WebSocket): what follows is not HTTP.
			_, err := io.Copy(cw, r)
			return cw.n, err
		case req.chunked:
			if err := copyChunked(cw, r); err != nil {
				return cw.n, err
			}
		case req.length > 0:
			if _, err := io.CopyN(cw, r, req.length); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return cw.n, err
			}
		case req.length < 0:
			return cw.n, fmt.Errorf("bad Content-Length")
		}
	}
}

// readHead reads one request head: its lines up to and including the
// empty line. Empty lines before a request (allowed between requests) are
// kept with it.
func readHead(r *bufio.Reader) ([]byte, error) {
	var head []byte
	lineAt, started := 0, false
	for {
		line, err := r.ReadSlice('\n')
		head = append(head, line...)
		if len(head) > maxHead {
			return head, errHeadTooLarge
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the line goes on
		}
		if err != nil {
			return head, err
		}
		blank := len(bytes.TrimRight(head[lineAt:], "\r\n")) == 0
		lineAt = len(head)
		switch {
		case blank && started:
			return head, nil
		case !blank:
			started = true
		}
	}
}

// requestInfo is what the forwarder needs of a request head.
type requestInfo struct {
	length  int64 // Content-Length (0 when none; -1 when bad)
	chunked bool
	tunnel  bool
}

// rewriteHead returns the head with placeholders substituted, and how the
// request's body is framed.
func (rw *rewriter) rewriteHead(head []byte) (requestInfo, []byte) {
	var info requestInfo
	lines := bytes.SplitAfter(head, []byte("\n"))
	// lines: leading blank lines, the request line, header lines, the
	// blank line, and "" after the final newline.
	i := 0
	for i < len(lines) && len(bytes.TrimRight(lines[i], "\r\n")) == 0 {
		i++
	}
	if i >= len(lines) {
		return info, head
	}
	if f := strings.Fields(string(lines[i])); len(f) > 0 && strings.EqualFold(f[0], "CONNECT") {
		info.tunnel = true
	}
	hdrStart := i + 1
	// First pass: the Host header and the framing.
	hosts := 0
	hostOK := false
	upgrade := false
	for _, l := range lines[hdrStart:] {
		k, v, ok := headerLine(l)
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "host":
			hosts++
			hostOK = hostName(v) == rw.name
		case "content-length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (info.length > 0 && n != info.length) {
				info.length = -1
			} else if info.length >= 0 {
				info.length = n
			}
		case "transfer-encoding":
			codings := strings.Split(v, ",")
			info.chunked = strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked")
		case "upgrade":
			upgrade = true
		}
	}
	if info.chunked {
		info.length = 0 // Transfer-Encoding wins over Content-Length
	}
	if upgrade {
		info.tunnel = true
	}
	if hosts != 1 || !hostOK {
		return info, head
	}
	hostport := rw.name + ":" + strconv.Itoa(int(rw.port))
	var out []byte
	changed := false
	for j, l := range lines {
		if j >= hdrStart {
			if k, v, ok := headerLine(l); ok {
				if nv, sub := rw.broker.Substitute(hostport, k, v); sub {
					eol := l[len(bytes.TrimRight(l, "\r\n")):]
					l = append(append([]byte(k+": "), nv...), eol...)
					rw.substituted++
					changed = true
				}
			}
		}
		out = append(out, l...)
	}
	if !changed {
		return info, head
	}
	return info, out
}

// headerLine splits "Name: value\r\n" (value without its surrounding
// whitespace). A continuation line (obsolete folding) or the blank line is
// not a header line.
func headerLine(l []byte) (name, value string, ok bool) {
	if len(l) == 0 || l[0] == ' ' || l[0] == '\t' {
		return "", "", false
	}
	s := strings.TrimRight(string(l), "\r\n")
	k, v, ok := strings.Cut(s, ":")
	if !ok || k == "" || strings.ContainsAny(k, " \t") {
		return "", "", false
	}
	return k, strings.Trim(v, " \t"), true
}

// hostName is a Host header's name: lower case, without port or trailing
// dot.
func hostName(v string) string {
	if h, _, err := net.SplitHostPort(v); err == nil {
		v = h
	}
	return strings.ToLower(strings.TrimSuffix(v, "."))
}

// copyChunked copies one chunked body, framing included, byte for byte:
// each chunk-size line, its data and CRLF, the last chunk and the
// trailer section up to its blank line.
func copyChunked(w io.Writer, r *bufio.Reader) error {
	for {
		line, err := readLine(r, maxChunkLine)
		if err != nil {
			return fmt.Errorf("chunked body: %w", err)
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		sz := strings.TrimSpace(strings.TrimRight(string(line), "\r\n"))
		if i := strings.IndexByte(sz, ';'); i >= 0 {
			sz = strings.TrimSpace(sz[:i])
		}
		n, err := strconv.ParseInt(sz, 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("chunked body: bad chunk size %q", sz)
		}
		if n == 0 {
			// Trailers, then the blank line.
			for {
				t, err := readLine(r, maxChunkLine)
				if err != nil {
					return fmt.Errorf("chunked body trailer: %w", err)
				}
				if _, err := w.Write(t); err != nil {
					return err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(w, r, n); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("chunked body: %w", err)
		}
		crlf, err := readLine(r, maxChunkLine)
		if err != nil {
			return fmt.Errorf("chunked body: %w", err)
		}
		if _, err := w.Write(crlf); err != nil {
			return err
		}
	}
}

// readLine reads one line, newline included, of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		l, err := r.ReadSlice('\n')
		out = append(out, l...)
		if len(out) > max {
			return out, fmt.Errorf("line longer than %d bytes", max)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return out, io.ErrUnexpectedEOF
		}
		return out, err
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n += int64(k)
	return k, err
}
