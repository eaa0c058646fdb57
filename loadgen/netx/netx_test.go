package netx

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// countingConn counts the deadline changes that reach the connection.
type countingConn struct {
	net.Conn
	sets int
}

func (c *countingConn) SetDeadline(t time.Time) error {
	c.sets++
	return c.Conn.SetDeadline(t)
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.sets++
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.sets++
	return c.Conn.SetWriteDeadline(t)
}

// readTimesOutAfter reads from c, which never gets data, and returns how
// long the read took to time out.
func readTimesOutAfter(t *testing.T, c *Conn) time.Duration {
	t.Helper()
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	return time.Since(start)
}

// TestDeadlinesClampedAndNotRepeated checks that the library's deadlines
// are clamped to the hard deadline (clearing one means the hard deadline),
// that a shorter one of the library's still applies, and that a deadline
// already in force is not set on the connection again.
func TestDeadlinesClampedAndNotRepeated(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cc := &countingConn{Conn: a}
	c := Wrap(context.Background(), cc, 150*time.Millisecond)
	defer c.Close()
	if cc.sets != 1 {
		t.Errorf("%d deadline changes after arming, want 1", cc.sets)
	}
	// A library that sets a long deadline and clears it, as go-smtp does
	// around every command, changes nothing under the hard deadline.
	for range 10 {
		c.SetDeadline(time.Now().Add(time.Hour))
		c.SetDeadline(time.Time{})
	}
	if cc.sets != 1 {
		t.Errorf("%d deadline changes after the library's no-op deadlines, want 1", cc.sets)
	}
	if d := readTimesOutAfter(t, c); d < 100*time.Millisecond || d > time.Second {
		t.Errorf("read under the hard deadline timed out after %v, want about 150ms", d)
	}
	c.ArmFor(time.Hour)
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if d := readTimesOutAfter(t, c); d > 500*time.Millisecond {
		t.Errorf("the library's shorter read deadline was not applied: %v", d)
	}
}
