package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 00000000:7530 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0BB8 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 20 4 30 10 -1
   3: garbage
`

const procTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0
`

func TestParseProcNetTCP(t *testing.T) {
	ls, err := parseProcNetTCP(strings.NewReader(procTCP))
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 {
		t.Fatalf("%d listeners, want 2 (the established socket and the garbage line are skipped): %+v", len(ls), ls)
	}
	if ls[0].addr.String() != "127.0.0.1" || ls[0].port != 3000 || ls[0].inode != 1111 {
		t.Fatalf("first: %+v", ls[0])
	}
	if ls[1].addr.String() != "0.0.0.0" || ls[1].port != 30000 || ls[1].inode != 2222 {
		t.Fatalf("second: %+v", ls[1])
	}
	ls, err = parseProcNetTCP(strings.NewReader(procTCP6))
	if err != nil || len(ls) != 2 {
		t.Fatalf("%+v %v", ls, err)
	}
	if ls[0].addr.String() != "::1" || ls[0].port != 8000 || ls[0].inode != 4444 {
		t.Fatalf("v6: %+v", ls[0])
	}
}

// fakeProc builds a /proc with the tables above and processes whose fds
// point at sockets.
func fakeProc(t *testing.T, fds map[int][]string) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	os.WriteFile(filepath.Join(dir, "net", "tcp"), []byte(procTCP), 0o644)
	os.WriteFile(filepath.Join(dir, "net", "tcp6"), []byte(procTCP6), 0o644)
	for pid, links := range fds {
		fd := filepath.Join(dir, strconv.Itoa(pid), "fd")
		os.MkdirAll(fd, 0o755)
		os.WriteFile(filepath.Join(dir, strconv.Itoa(pid), "comm"), []byte("proc"+strconv.Itoa(pid)+"\n"), 0o644)
		for i, l := range links {
			if err := os.Symlink(l, filepath.Join(fd, strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestPortOwnedBy(t *testing.T) {
	proc := fakeProc(t, map[int][]string{
		10: {"/dev/null", "socket:[1111]"}, // listens on 3000 (v4)
		20: {"socket:[2222]"},              // listens on 30000
		30: {"socket:[4444]", "pipe:[9]"},  // listens on 8000 (v6)
		40: {"socket:[3333]"},              // an established connection on 3000
	})
	for _, tc := range []struct {
		port   int
		pids   []int
		want   bool
		detail string
	}{
		{3000, []int{10}, true, "pid 10 (proc10) listens on 127.0.0.1:3000"},
		{3000, []int{20, 40}, false, "held by pid 10 (proc10), not by the service"}, // :3000 is not :30000; a connection is not a listener
		{30000, []int{20}, true, "0.0.0.0:30000"},
		{30000, []int{10}, false, "held by pid 20"},
		{8000, []int{30}, true, "[::1]:8000"},
		{8000, []int{99}, false, "held by pid 30"}, // a pid that is gone
		{3001, []int{10}, false, "nothing listens on port 3001"},
	} {
		ok, d := portOwnedBy(proc, tc.port, tc.pids)
		if ok != tc.want || !strings.Contains(d, tc.detail) {
			t.Errorf("port %d pids %v: %v %q, want %v and %q", tc.port, tc.pids, ok, d, tc.want, tc.detail)
		}
	}
}

func TestStatPPIDSession(t *testing.T) {
	pp, sid, ok := statPPIDSession([]byte("123 (a (weird) name) S 45 123 99 0 -1 4194560"))
	if !ok || pp != 45 || sid != 99 {
		t.Fatalf("%d %d %v", pp, sid, ok)
	}
	if _, _, ok := statPPIDSession([]byte("garbage")); ok {
		t.Fatal("garbage parsed")
	}
}

func TestParseNotify(t *testing.T) {
	for in, want := range map[string][2]string{
		"READY=1":                         {"true", ""},
		"STATUS=loading\nREADY=0":         {"false", "loading"},
		"MAINPID=4\nREADY=1\nSTATUS=up\n": {"true", "up"},
		"":                                {"false", ""},
	} {
		r, s := parseNotify([]byte(in))
		if strconv.FormatBool(r) != want[0] || s != want[1] {
			t.Errorf("%q: %v %q", in, r, s)
		}
	}
}
