// Package netx is the connection discipline of every mailchaos client: a
// net.Conn dialled with a context, whose every wait is bounded by a hard
// deadline the protocol library cannot lift, and a watchdog that closes the
// connection if it outlives that deadline or its context.
//
// go-smtp and go-imap honour no context and set (and clear) deadlines of
// their own: go-smtp clears them after each command, go-imap runs without a
// read deadline while idle. A Conn clamps every deadline the library asks for
// to the hard deadline set with Arm, so "no deadline" becomes "the hard
// deadline", and the watchdog is the backstop for anything that still blocks.
//
// The package also turns network errors into the typed classes the history
// records (timeout, conn-refused, conn-reset, eof, tls, dns, ...), by type
// and errno, never by parsing messages. Protocol errors are classified by
// the protocol packages.
package netx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WatchdogGrace is how long after the hard deadline the watchdog closes a
// connection that a blocked call has not given up by itself.
const WatchdogGrace = 2 * time.Second

// The classes of network errors.
const (
	ClassTimeout     = "timeout"
	ClassRefused     = "conn-refused"
	ClassReset       = "conn-reset"
	ClassEOF         = "eof"
	ClassTLS         = "tls"
	ClassDNS         = "dns"
	ClassUnreachable = "unreachable"
	ClassCanceled    = "canceled"
	ClassClosed      = "closed" // closed by us (watchdog or shutdown)
	ClassNet         = "net"    // another network error
	ClassError       = "error"  // not a network error
)

// Conn is a net.Conn with a hard deadline and a watchdog. It records the
// first I/O error it sees so callers whose library flattens errors into
// strings can still classify the cause by type.
type Conn struct {
	net.Conn

	mu     sync.Mutex
	hard   time.Time // zero: not armed
	rd, wd time.Time // deadlines the library asked for
	// The deadlines last set on the connection: go-smtp sets and clears a
	// deadline around every command, which under a hard deadline mostly
	// clamps to the one already set, and setting it again would cost a
	// runtime timer update each time for nothing.
	rSet, wSet time.Time
	timer      *time.Timer
	firstErr   error
	written    atomic.Int64
	read       atomic.Int64

	fired  atomic.Int32 // 0, firedDeadline or firedContext
	stopAF func() bool
}

const (
	firedDeadline = 1
	firedContext  = 2
)

// Dial connects to addr within timeout (and ctx), arms the hard deadline at
// now+armFor and starts the watchdog, which also closes the connection when
// ctx ends.
func Dial(ctx context.Context, addr string, timeout, armFor time.Duration) (*Conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return Wrap(ctx, nc, armFor), nil
}

// Wrap puts nc under the discipline: hard deadline now+armFor, watchdog,
// closed when ctx ends.
func Wrap(ctx context.Context, nc net.Conn, armFor time.Duration) *Conn {
	c := &Conn{Conn: nc}
	c.stopAF = context.AfterFunc(ctx, func() {
		c.fired.CompareAndSwap(0, firedContext)
		c.Conn.Close()
	})
	c.Arm(time.Now().Add(armFor))
	return c
}

// Arm sets the hard deadline: no read or write may wait past t, whatever
// the library asks, and the watchdog closes the connection at t plus
// WatchdogGrace. Re-arm before each operation with that operation's budget.
func (c *Conn) Arm(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hard = t
	c.apply()
	wait := time.Until(t) + WatchdogGrace
	if c.timer == nil {
		c.timer = time.AfterFunc(wait, c.watchdog)
	} else {
		c.timer.Reset(wait)
	}
}

// apply sets on the connection the deadlines the library asked for,
// clamped to the hard deadline, where they differ from those already set.
// c.mu must be held.
func (c *Conn) apply() error {
	rd, wd := c.clamp(c.rd), c.clamp(c.wd)
	var err error
	switch {
	case rd.Equal(c.rSet) && wd.Equal(c.wSet):
	case rd.Equal(wd):
		err = c.Conn.SetDeadline(rd)
	case rd.Equal(c.rSet):
		err = c.Conn.SetWriteDeadline(wd)
	case wd.Equal(c.wSet):
		err = c.Conn.SetReadDeadline(rd)
	default:
		err = errors.Join(c.Conn.SetReadDeadline(rd), c.Conn.SetWriteDeadline(wd))
	}
	if err == nil {
		c.rSet, c.wSet = rd, wd
	}
	return err
}

// ArmFor arms the hard deadline d from now.
func (c *Conn) ArmFor(d time.Duration) { c.Arm(time.Now().Add(d)) }

func (c *Conn) watchdog() {
	c.mu.Lock()
	late := !c.hard.IsZero() && time.Now().After(c.hard)
	c.mu.Unlock()
	if late {
		c.fired.CompareAndSwap(0, firedDeadline)
		c.Conn.Close()
	}
}

func (c *Conn) clamp(t time.Time) time.Time {
	if c.hard.IsZero() {
		return t
	}
	if t.IsZero() || t.After(c.hard) {
		return c.hard
	}
	return t
}

// SetDeadline sets both deadlines, clamped to the hard deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd, c.wd = t, t
	return c.apply()
}

// SetReadDeadline sets the read deadline, clamped to the hard deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = t
	return c.apply()
}

// SetWriteDeadline sets the write deadline, clamped to the hard deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wd = t
	return c.apply()
}

// Read reads from the connection, remembering the first error.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	if err != nil {
		c.note(err)
	}
	return n, err
}

// Write writes to the connection, remembering the first error.
func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	if err != nil {
		c.note(err)
	}
	return n, err
}

// WriteBuffers writes bufs in order, in one writev where the connection
// allows it, counting bytes and remembering the first error like Write. It
// consumes bufs as net.Buffers.WriteTo does.
func (c *Conn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	n, err := bufs.WriteTo(c.Conn)
	c.written.Add(n)
	if err != nil {
		c.note(err)
	}
	return n, err
}

func (c *Conn) note(err error) {
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
}

// Err returns the first I/O error the connection saw, or nil.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstErr
}

// BytesWritten returns how many bytes were written so far.
func (c *Conn) BytesWritten() int64 { return c.written.Load() }

// BytesRead returns how many bytes were read so far.
func (c *Conn) BytesRead() int64 { return c.read.Load() }

// WatchdogFired reports whether the watchdog or the context closed the
// connection.
func (c *Conn) WatchdogFired() bool { return c.fired.Load() != 0 }

// Close stops the watchdog and closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.stopAF()
	return c.Conn.Close()
}

// Class returns the class of err as seen on this connection: the class of
// err itself if it is a typed network error, else of the first I/O error the
// connection recorded, with a watchdog or context close reported as timeout
// or canceled.
func (c *Conn) Class(err error) string {
	if c != nil {
		switch c.fired.Load() {
		case firedDeadline:
			return ClassTimeout
		case firedContext:
			return ClassCanceled
		}
	}
	cl := Classify(err)
	if (cl == ClassError || cl == ClassClosed) && c != nil {
		if first := c.Err(); first != nil {
			return Classify(first)
		}
	}
	return cl
}

// Classify returns the class of a network error by its type: timeout,
// conn-refused, conn-reset, eof, tls, dns, unreachable, canceled, closed,
// net; ClassError for anything else and "" for nil.
func Classify(err error) string {
	if err == nil {
		return ""
	}
	var (
		certErr  *tls.CertificateVerificationError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		unkAuth  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
		dnsErr   *net.DNSError
		netErr   net.Error
		opErr    *net.OpError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ClassTimeout
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alertErr),
		errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &invErr):
		return ClassTLS
	case errors.As(err, &dnsErr):
		return ClassDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return ClassReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ClassUnreachable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClassEOF
	case errors.Is(err, net.ErrClosed):
		return ClassClosed
	case errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	case errors.As(err, &opErr):
		return ClassNet
	}
	return ClassError
}

// Sleep waits d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
