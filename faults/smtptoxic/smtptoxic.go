// Package smtptoxic is a Toxiproxy toxic that understands just enough SMTP
// to cut a connection at the end of a message.
//
// Mode "after" makes the indeterminate case on demand: the client's final
// "." reaches the server, the server accepts the message, and the client
// never hears the reply because the connection is closed first (a retry
// then makes a recovered duplicate). It works on the downstream (server to
// client) stream: after the server's "354" reply to DATA, whatever the
// server sends next (the reply to the final ".") is dropped and the
// connection closed. Doing it there, rather than closing the upstream
// right after forwarding the ".", leaves no race in which a fast server's
// "250" slips back to the client.
//
// Mode "before" works on the upstream (client to server) stream: the
// client's bytes are forwarded up to the final "." of DATA (or all but the
// last byte of BDAT ... LAST), which is withheld, and the connection is
// closed. The message is not accepted and the client sees the same broken
// connection.
//
// The toxic tells the streams apart by their first line (server replies
// start with a three-digit code), so a toxic on the wrong stream for its
// mode passes data through untouched rather than doing something else.
// Importing the package registers it under the type name "smtp_data_cut";
// the Toxiproxy server of faults/toxiserver does. The toxic's toxicity
// is the fraction of connections it applies to; an affected connection is
// cut at its first message.
//
// The client-side parser cannot see the server's replies: a DATA the
// server refused (no 354) is recognised by the next line being an SMTP
// command rather than message text. After STARTTLS the stream is
// encrypted and passed through untouched: use the toxic on plain SMTP.
package smtptoxic

import (
	"strconv"
	"strings"
	"time"

	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
)

// Type is the toxic type name the toxic is registered under.
const Type = "smtp_data_cut"

// Modes of the cut.
const (
	// ModeAfter forwards the final "." then cuts: the message is accepted.
	ModeAfter = "after"
	// ModeBefore cuts without forwarding the final ".": not accepted.
	ModeBefore = "before"
)

// DataCut is the toxic's configuration (its Toxiproxy attributes).
type DataCut struct {
	// Mode is "after" (default) or "before".
	Mode string `json:"mode"`
}

var (
	_ toxics.Toxic         = (*DataCut)(nil)
	_ toxics.StatefulToxic = (*DataCut)(nil)
)

func init() { toxics.Register(Type, new(DataCut)) }

// NewState returns the per-connection parser, kept across interruptions
// of Pipe (Toxiproxy interrupts a toxic whenever the chain changes).
func (t *DataCut) NewState() any { return new(Parser) }

// Cleanup runs before Toxiproxy removes the toxic. There is nothing to
// release; what matters is that a toxic with a Cleanup makes Toxiproxy look
// whether the stub is already closed (a connection this toxic cut) and then
// leave the chain alone. Without it, removing the toxic from a cut connection
// may rewire the previous stub onto the closed output, and that stub panics
// ("close of closed channel") when its connection ends.
func (t *DataCut) Cleanup(*toxics.ToxicStub) {}

var _ toxics.CleanupToxic = (*DataCut)(nil)

// Pipe forwards the stream until a message ends, then cuts.
func (t *DataCut) Pipe(stub *toxics.ToxicStub) {
	p, _ := stub.State.(*Parser)
	if p == nil {
		p = new(Parser)
	}
	mode := t.Mode
	if mode == "" {
		mode = ModeAfter
	}
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				if len(p.pending) > 0 {
					stub.Output <- &stream.StreamChunk{Data: p.pending, Timestamp: time.Now()}
					p.pending = nil
				}
				stub.Close()
				return
			}
			if p.cut {
				continue // already cut: swallow whatever still comes
			}
			keep, cut := p.chunk(mode, c.Data)
			if len(keep) > 0 {
				stub.Output <- &stream.StreamChunk{Data: keep, Timestamp: c.Timestamp}
			}
			if !cut {
				continue
			}
			p.cut = true
			// Closing the stub closes this direction's destination;
			// Toxiproxy then tears down the other side too.
			stub.Close()
			drain(stub)
			return
		}
	}
}

// chunk processes the next bytes of the stream: it returns what to
// forward now and whether to cut the connection after that.
func (p *Parser) chunk(mode string, b []byte) ([]byte, bool) {
	if p.side == sideUnknown {
		p.sniff(b)
	}
	switch {
	case p.side == sideServer && mode == ModeAfter:
		return p.replies(b)
	case p.side == sideClient && mode == ModeBefore:
		return p.before(b)
	case p.side == sideUnknown:
		// Keep following the client side until the first line decides:
		// nothing can end a message before it.
		p.Feed(b)
	}
	return b, false
}

// sniff decides from the first line which stream this is.
func (p *Parser) sniff(b []byte) {
	for _, c := range b {
		if len(p.first1) < 8 {
			p.first1 = append(p.first1, c)
		}
		if c == '\n' || len(p.first1) >= 4 {
			l := p.first1
			if len(l) >= 4 && isDigit(l[0]) && isDigit(l[1]) && isDigit(l[2]) && (l[3] == ' ' || l[3] == '-' || l[3] == '\r') {
				p.side = sideServer
			} else {
				p.side = sideClient
			}
			return
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// replies follows the server's replies; after a complete "354" line, the
// next bytes the server sends are the reply to the final "." of DATA: they
// are dropped and the connection cut.
func (p *Parser) replies(b []byte) ([]byte, bool) {
	for i, c := range b {
		if p.armed {
			return b[:i], true
		}
		if len(p.line) < maxLine {
			p.line = append(p.line, c)
		}
		if c == '\n' {
			p.armed = len(p.line) >= 4 && string(p.line[:4]) == "354 "
			p.line = p.line[:0]
		}
	}
	return b, false
}

// before follows the client's commands and withholds the end of the first
// message, then cuts.
func (p *Parser) before(b []byte) ([]byte, bool) {
	data, from := b, 0
	if len(p.pending) > 0 {
		data = append(p.pending, b...)
		from = len(p.pending)
		p.pending = nil
	}
	_, found := p.Feed(data[from:])
	if found {
		return data[:max(from+p.termStart, 0)], true
	}
	hold := 0
	if p.state == stData {
		// Withhold what may be the start of the terminator, so the final
		// "." never gets through even when it arrives split over chunks.
		hold = min(p.match, p.dataSeen, len(data))
	}
	if hold > 0 {
		p.pending = append([]byte(nil), data[len(data)-hold:]...)
	}
	return data[:len(data)-hold], false
}

// drain reads and drops the rest of the client's stream so the proxy's
// reader never blocks on a toxic that stopped reading.
func drain(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				return
			}
		}
	}
}

// Parser follows the client side of an SMTP session and finds where a
// message ends. The zero value is ready at the start of a session.
type Parser struct {
	state    int
	line     []byte // current command line (capped)
	match    int    // bytes of "\r\n.\r\n" matched in DATA
	first    bool   // in DATA, still in the first line
	firstBuf []byte // that first line (capped), to spot a refused DATA
	dataSeen int    // bytes seen since DATA (the match may count the DATA line's CRLF)
	bdatLeft int64
	bdatLast bool
	cut      bool
	pending  []byte // bytes withheld by mode "before" (a possible terminator prefix)
	side     int    // which stream this is, from its first line
	first1   []byte // the first bytes, to decide the side
	armed    bool   // server side: a 354 was sent, the next reply is the final one
	// termStart is the offset in the last fed chunk where the terminator
	// (".\r\n", or the last BDAT byte) starts; it can be negative when the
	// terminator began in an earlier chunk.
	termStart int
}

const (
	stCommand = iota
	stData
	stBDAT
	stTLS // after STARTTLS: opaque
)

const maxLine = 1024

const (
	sideUnknown = iota
	sideClient
	sideServer
)

var terminator = []byte("\r\n.\r\n")

// Feed consumes the next bytes of the client's stream. If a message ends in
// b, it returns the offset just past the terminator and true; the Parser
// then expects a new command.
func (p *Parser) Feed(b []byte) (int, bool) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch p.state {
		case stTLS:
			return 0, false
		case stCommand:
			if len(p.line) < maxLine {
				p.line = append(p.line, c)
			}
			if c == '\n' {
				p.command(string(p.line))
				p.line = p.line[:0]
			}
		case stData:
			if p.first {
				if len(p.firstBuf) < maxLine {
					p.firstBuf = append(p.firstBuf, c)
				}
				if c == '\n' {
					p.first = false
					if isCommand(string(p.firstBuf)) {
						// The server refused DATA; this is the next command.
						p.state = stCommand
						p.command(string(p.firstBuf))
						continue
					}
				}
			}
			p.dataSeen++
			p.match = step(p.match, c)
			if p.match == len(terminator) {
				p.termStart = i + 1 - 3 // ".\r\n"
				p.state, p.match = stCommand, 0
				return i + 1, true
			}
		case stBDAT:
			p.bdatLeft--
			if p.bdatLeft == 0 {
				p.state = stCommand
				if p.bdatLast {
					p.termStart = i
					return i + 1, true
				}
			}
		}
	}
	return 0, false
}

func (p *Parser) command(line string) {
	verb, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
	switch strings.ToUpper(verb) {
	case "DATA":
		if strings.TrimSpace(rest) == "" {
			// The "\r\n" that ended the DATA line counts as the start of
			// the terminator, so an empty message (".\r\n") ends at once.
			p.state, p.match, p.first, p.firstBuf, p.dataSeen = stData, 2, true, p.firstBuf[:0], 0
		}
	case "BDAT":
		f := strings.Fields(rest)
		if len(f) == 0 {
			return
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return
		}
		p.bdatLast = len(f) > 1 && strings.EqualFold(f[1], "LAST")
		if n == 0 {
			if p.bdatLast {
				// "BDAT 0 LAST" ends the message with its command line.
				p.state = stCommand
			}
			return
		}
		p.state, p.bdatLeft = stBDAT, n
	case "STARTTLS":
		p.state = stTLS
	}
}

// isCommand reports whether a line that followed DATA is an SMTP command,
// not message text: a refused DATA is followed by RSET, QUIT, MAIL... A
// header line ("Name: value") has no space before its colon.
func isCommand(line string) bool {
	l := strings.ToUpper(strings.TrimRight(line, "\r\n"))
	switch l {
	case "RSET", "QUIT", "NOOP", "DATA", "STARTTLS":
		return true
	}
	for _, prefix := range []string{"MAIL FROM:", "RCPT TO:", "EHLO ", "HELO ", "BDAT "} {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// step advances a KMP match of the terminator by one byte.
func step(m int, c byte) int {
	for {
		if terminator[m] == c {
			return m + 1
		}
		if m == 0 {
			return 0
		}
		m = failure[m-1]
	}
}

// failure is the KMP failure function of the terminator.
var failure = func() []int {
	f := make([]int, len(terminator))
	k := 0
	for i := 1; i < len(terminator); i++ {
		for k > 0 && terminator[i] != terminator[k] {
			k = f[k-1]
		}
		if terminator[i] == terminator[k] {
			k++
		}
		f[i] = k
	}
	return f
}()

// Ended reports whether the parser has cut its connection.
func (p *Parser) Ended() bool { return p.cut }
