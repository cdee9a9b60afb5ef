package agent

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// tcpListen is a listening TCP socket from /proc/net/tcp or tcp6.
type tcpListen struct {
	addr  netip.Addr
	port  int
	inode uint64
}

// tcpStateListen is TCP_LISTEN in /proc/net/tcp's st column.
const tcpStateListen = "0A"

// parseProcNetTCP reads the LISTEN sockets of a /proc/net/tcp or
// /proc/net/tcp6 table. A line looks like
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	 0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21938 1 ...
//
// Addresses are hex words in the kernel's byte order (little-endian here);
// the port is hex in network order. Malformed lines are skipped.
func parseProcNetTCP(r io.Reader) ([]tcpListen, error) {
	var out []tcpListen
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != tcpStateListen {
			continue
		}
		addr, port, ok := parseHexAddr(f[1])
		if !ok {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, tcpListen{addr: addr, port: port, inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddr decodes "0100007F:1F40" (v4) or a 32-digit v6 address.
func parseHexAddr(s string) (netip.Addr, int, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, false
	}
	// Each 32-bit word is in little-endian order.
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr, int(port), true
}

// listenersOn returns the LISTEN sockets on port from proc's tcp and tcp6
// tables.
func listenersOn(proc string, port int) ([]tcpListen, error) {
	var out []tcpListen
	var firstErr error
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(proc + "/net/" + name)
		if err != nil {
			if firstErr == nil && !os.IsNotExist(err) {
				firstErr = err
			}
			continue
		}
		ls, err := parseProcNetTCP(f)
		f.Close()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		for _, l := range ls {
			if l.port == port {
				out = append(out, l)
			}
		}
	}
	return out, firstErr
}

// socketInodes returns the socket inodes a process's fds refer to.
func socketInodes(proc string, pid int, into map[uint64]int) {
	dir := proc + "/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		return // gone, or not ours to see
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		link, err := os.Readlink(dir + "/" + n)
		if err != nil {
			continue
		}
		if ino, ok := socketInode(link); ok {
			into[ino] = pid
		}
	}
}

// socketInode parses "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	return n, err == nil
}

// portOwnedBy checks whether one of pids holds a LISTEN socket on port.
// When none does it says who does, if anyone: the detail of a failing
// port probe.
func portOwnedBy(proc string, port int, pids []int) (bool, string) {
	ls, err := listenersOn(proc, port)
	if err != nil && len(ls) == 0 {
		return false, fmt.Sprintf("read %s/net/tcp: %v", proc, err)
	}
	if len(ls) == 0 {
		return false, fmt.Sprintf("nothing listens on port %d", port)
	}
	inodes := make(map[uint64]int)
	for _, pid := range pids {
		socketInodes(proc, pid, inodes)
	}
	for _, l := range ls {
		if pid, ok := inodes[l.inode]; ok {
			return true, fmt.Sprintf("pid %d (%s) listens on %s", pid, procComm(proc, pid), netip.AddrPortFrom(l.addr, uint16(port)))
		}
	}
	return false, fmt.Sprintf("port %d is held by %s, not by the service", port, ownerOf(proc, ls))
}

// ownerOf names the processes holding any of ls (for messages only).
func ownerOf(proc string, ls []tcpListen) string {
	want := make(map[uint64]bool, len(ls))
	for _, l := range ls {
		want[l.inode] = true
	}
	ents, _ := os.ReadDir(proc)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		inodes := map[uint64]int{}
		socketInodes(proc, pid, inodes)
		for ino := range inodes {
			if want[ino] {
				return fmt.Sprintf("pid %d (%s)", pid, procComm(proc, pid))
			}
		}
	}
	return "another process"
}

func procComm(proc string, pid int) string {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
