package corpus

import "testing"

// TestStamp checks that a stamp is made only when the placeholder comes
// through formatting whole, and that stamping writes the value over it.
func TestStamp(t *testing.T) {
	whole := func(p string) ([]byte, error) { return []byte("X-A: =?" + p + "?=\r\n"), nil }
	st, ok := newStamp(whole, 6)
	if got := string(st.append([]byte("H: 1\r\n"), "123456")); !ok || got != "H: 1\r\nX-A: =?123456?=\r\n" {
		t.Errorf("whole placeholder: ok %v, stamped %q", ok, got)
	}
	split := func(p string) ([]byte, error) { return []byte("X-A: " + p[:2] + "\r\n " + p[2:] + "\r\n"), nil }
	if _, ok := newStamp(split, 6); ok {
		t.Error("a placeholder folded in two was stamped")
	}
	grows := func(p string) ([]byte, error) {
		if p[0] == '1' {
			p += "!"
		}
		return []byte("X-A: " + p + "\r\n"), nil
	}
	if _, ok := newStamp(grows, 6); ok {
		t.Error("a field whose length depends on the value was stamped")
	}
}
