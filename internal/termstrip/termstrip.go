// Package termstrip turns a terminal's output into plain text: what
// `hearth workspace shell read --plain` returns.
package termstrip

// Strip removes terminal escape sequences (CSI, OSC, charset
// selections), carriage returns before newlines, and backspace-erased
// characters, leaving plain text for a language model to read.
func Strip(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == 0x1b && i+1 < len(b):
			i++
			switch b[i] {
			case '[': // CSI: parameters then a final byte 0x40-0x7e
				for i+1 < len(b) && !(b[i+1] >= 0x40 && b[i+1] <= 0x7e) {
					i++
				}
				i++
			case ']', 'P', '_', '^': // OSC/DCS/APC/PM: until BEL or ST
				for i+1 < len(b) {
					i++
					if b[i] == 0x07 {
						break
					}
					if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
						i++
						break
					}
				}
			case '(', ')', '*', '+': // charset designation: one more byte
				i++
			}
		case c == 0x1b:
		case c == '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			out = append(out, c)
		case c == 0x08:
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case c == 0x07 || c == 0x0f || c == 0x0e:
		default:
			out = append(out, c)
		}
	}
	return out
}
