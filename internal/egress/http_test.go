package egress

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hearthvm/hearth/internal/secrets"
)

const (
	ph    = "hearth-placeholder-API_KEY-0123"
	value = "real-secret-value"
	ph2   = "hearth-placeholder-OTHER-4567"
)

func testBroker() *secrets.Broker {
	return secrets.NewBroker([]secrets.BrokerRule{
		{Name: "API_KEY", Placeholder: ph, Hosts: []string{"api.test"}, Headers: []string{"Authorization", "X-Api-Key"}, Value: []byte(value)},
		{Name: "OTHER", Placeholder: ph2, Hosts: []string{"other.test"}, Headers: []string{"Authorization"}, Value: []byte("other-value")},
	})
}

// TestRewrite runs request streams through the rewriter, whole and one
// byte per read (heads and chunks split across reads), and checks the
// bytes the upstream gets.
func TestRewrite(t *testing.T) {
	r := func(lines ...string) string { return strings.Join(lines, "\r\n") }
	cases := []struct {
		name    string
		in      string
		want    string
		subs    int
		wantErr bool
	}{
		{
			name: "configured header substituted, body query and other header not",
			in:   r("POST /v1?key="+ph+" HTTP/1.1", "Host: api.test", "Authorization: Bearer "+ph, "X-Other: "+ph, "Content-Length: 35", "", "body "+ph[:30]),
			want: r("POST /v1?key="+ph+" HTTP/1.1", "Host: api.test", "Authorization: Bearer "+value, "X-Other: "+ph, "Content-Length: 35", "", "body "+ph[:30]),
			subs: 1,
		},
		{
			name: "header name in any case; value whitespace trimmed",
			in:   r("GET / HTTP/1.1", "host: API.test:443", "x-api-key:\t "+ph+" ", "", ""),
			want: r("GET / HTTP/1.1", "host: API.test:443", "x-api-key: "+value, "", ""),
			subs: 1,
		},
		{
			name: "placeholder for another host's rule left alone",
			in:   r("GET / HTTP/1.1", "Host: api.test", "Authorization: Bearer "+ph2, "", ""),
			want: r("GET / HTTP/1.1", "Host: api.test", "Authorization: Bearer "+ph2, "", ""),
		},
		{
			name: "Host header naming another host: nothing substituted",
			in:   r("GET / HTTP/1.1", "Host: other.test", "Authorization: Bearer "+ph, "", ""),
			want: r("GET / HTTP/1.1", "Host: other.test", "Authorization: Bearer "+ph, "", ""),
		},
		{
			name: "two Host headers: nothing substituted",
			in:   r("GET / HTTP/1.1", "Host: api.test", "Host: api.test", "Authorization: "+ph, "", ""),
			want: r("GET / HTTP/1.1", "Host: api.test", "Host: api.test", "Authorization: "+ph, "", ""),
		},
		{
			name: "chunked body with extensions and trailers copied as is; the next request substituted",
			in: r("POST /up HTTP/1.1", "Host: api.test", "Transfer-Encoding: gzip, chunked", "Authorization: "+ph, "", "5;ext=1", "hello", "1F", ph[:31], "0", "Trailer-A: "+ph, "", "") +
				r("GET /two HTTP/1.1", "Host: api.test", "Authorization: "+ph, "", ""),
			want: r("POST /up HTTP/1.1", "Host: api.test", "Transfer-Encoding: gzip, chunked", "Authorization: "+value, "", "5;ext=1", "hello", "1F", ph[:31], "0", "Trailer-A: "+ph, "", "") +
				r("GET /two HTTP/1.1", "Host: api.test", "Authorization: "+value, "", ""),
			subs: 2,
		},
		{
			name: "pipelined requests with Content-Length bodies that look like heads",
			in: r("PUT /a HTTP/1.1", "Host: api.test", "Content-Length: 42", "", "GET /fake HTTP/1.1\r\nAuthorization: "+ph[:4]+"\r\n\r\n") +
				r("GET /b HTTP/1.1", "Host: api.test", "X-Api-Key: "+ph, "", "") +
				r("GET /c HTTP/1.1", "Host: api.test", "", ""),
			want: r("PUT /a HTTP/1.1", "Host: api.test", "Content-Length: 42", "", "GET /fake HTTP/1.1\r\nAuthorization: "+ph[:4]+"\r\n\r\n") +
				r("GET /b HTTP/1.1", "Host: api.test", "X-Api-Key: "+value, "", "") +
				r("GET /c HTTP/1.1", "Host: api.test", "", ""),
			subs: 1,
		},
		{
			name: "bare LF line ends",
			in:   "GET / HTTP/1.1\nHost: api.test\nAuthorization: " + ph + "\n\n",
			want: "GET / HTTP/1.1\nHost: api.test\nAuthorization: " + value + "\n\n",
			subs: 1,
		},
		{
			name: "blank lines between requests kept",
			in:   r("GET / HTTP/1.1", "Host: api.test", "", "") + "\r\n" + r("GET / HTTP/1.1", "Host: api.test", "Authorization: "+ph, "", ""),
			want: r("GET / HTTP/1.1", "Host: api.test", "", "") + "\r\n" + r("GET / HTTP/1.1", "Host: api.test", "Authorization: "+value, "", ""),
			subs: 1,
		},
		{
			name: "upgrade: the rest is copied untouched",
			in:   r("GET /ws HTTP/1.1", "Host: api.test", "Upgrade: websocket", "Connection: Upgrade", "Authorization: "+ph, "", "") + "frames Authorization: " + ph + "\r\n\r\n",
			want: r("GET /ws HTTP/1.1", "Host: api.test", "Upgrade: websocket", "Connection: Upgrade", "Authorization: "+value, "", "") + "frames Authorization: " + ph + "\r\n\r\n",
			subs: 1,
		},
		{
			name:    "body cut short",
			in:      r("POST / HTTP/1.1", "Host: api.test", "Content-Length: 10", "", "abc"),
			want:    r("POST / HTTP/1.1", "Host: api.test", "Content-Length: 10", "", "abc"),
			wantErr: true,
		},
		{
			name:    "bad chunk size",
			in:      r("POST / HTTP/1.1", "Host: api.test", "Transfer-Encoding: chunked", "", "zz", ""),
			want:    r("POST / HTTP/1.1", "Host: api.test", "Transfer-Encoding: chunked", "", "zz", ""),
			wantErr: true,
		},
		{
			name:    "head too large",
			in:      "GET / HTTP/1.1\r\nHost: api.test\r\nX-Big: " + strings.Repeat("a", maxHead) + "\r\n\r\n",
			wantErr: true,
		},
	}
	for _, c := range cases {
		for _, split := range []bool{false, true} {
			name := c.name
			if split {
				name += " (one byte per read)"
			}
			t.Run(name, func(t *testing.T) {
				var src io.Reader = strings.NewReader(c.in)
				if split {
					src = iotest.OneByteReader(src)
				}
				rw := &rewriter{broker: testBroker(), name: "api.test", port: 443}
				var out bytes.Buffer
				n, err := rw.copy(&out, bufio.NewReader(src))
				if (err != nil) != c.wantErr {
					t.Fatalf("err %v, want error %v", err, c.wantErr)
				}
				if c.want != "" && out.String() != c.want {
					t.Errorf("upstream got\n%q\nwant\n%q", out.String(), c.want)
				}
				if n != int64(out.Len()) {
					t.Errorf("counted %d bytes, wrote %d", n, out.Len())
				}
				if rw.substituted != c.subs {
					t.Errorf("substituted %d, want %d", rw.substituted, c.subs)
				}
			})
		}
	}
}
