package supervisor

import (
	"os"
	"testing"
	"time"
)

// TestWatchStarter: the supervisor learns that its starter went away when
// the starter's end of the ready pipe closes, and not otherwise.
func TestWatchStarter(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	gone := make(chan struct{})
	unwatch := watchStarter(w, func() { close(gone) })
	defer unwatch()
	select {
	case <-gone:
		t.Fatal("starter reported gone while it holds the pipe")
	case <-time.After(100 * time.Millisecond):
	}
	r.Close() // the starter dies
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("starter's exit not noticed")
	}
}

func TestUnwatchStarter(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	called := false
	unwatch := watchStarter(w, func() { called = true })
	unwatch() // returns once the watch has ended
	// The pipe is still usable for the ready message.
	if _, err := w.Write([]byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if called {
		t.Fatal("gone called although the starter is alive")
	}
	// No pipe at all (tests, a supervisor run by hand): nothing to watch.
	watchStarter(nil, func() { t.Error("gone called without a pipe") })()
}
