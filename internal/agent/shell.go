package agent

// shellTable holds PTY shell sessions. (Placeholder: implemented with the
// shell operations.)
type shellTable struct{}

func newShellTable() *shellTable { return &shellTable{} }

func (s *Server) init() { s.shells = newShellTable() }
