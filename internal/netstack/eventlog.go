package netstack

import (
	"encoding/json"
	"os"
	"sync"

	"github.com/hearthvm/hearth/api"
)

// maxLogBytes is where the network log is rotated (to LOG.1).
const maxLogBytes = 8 << 20

// eventLog appends JSON lines to the network log file.
type eventLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
}

func openEventLog(path string) *eventLog {
	l := &eventLog{path: path}
	if path != "" {
		l.open()
	}
	return l
}

func (l *eventLog) open() {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	l.f = f
	if st, err := f.Stat(); err == nil {
		l.size = st.Size()
	}
}

func (l *eventLog) write(e api.NetworkEvent) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	if l.size+int64(len(b)) > maxLogBytes {
		l.f.Close()
		os.Rename(l.path, l.path+".1")
		l.open()
		if l.f == nil {
			return
		}
		l.size = 0
	}
	k, _ := l.f.Write(b)
	l.size += int64(k)
}

func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
