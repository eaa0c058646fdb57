// Package smtptoxic is a Toxiproxy toxic that understands just enough SMTP
// to cut a connection at the end of a message: right after the client's
// final "." of DATA (or the last byte of BDAT ... LAST), before the server's
// reply can come back. With mode "after" the terminator is forwarded, so
// the server accepts the message while the client never hears it was
// accepted: the indeterminate case, on demand (a retry then makes a
// recovered duplicate). With mode "before" the terminator is withheld, so
// the message is not accepted and the client sees the same broken
// connection.
//
// The toxic must sit on the upstream (client to server) stream. Importing
// the package registers it under the type name "smtp_data_cut"; the
// toxiproxy binary in faults/cmd/toxiproxy does. The toxic's toxicity is the
// fraction of connections it applies to; an affected connection is cut at
// its first message.
//
// It reads the client's stream only, so it cannot see the server's replies:
// a DATA the server refused (no 354) is recognised by the next line being
// an SMTP command rather than message text. After STARTTLS the stream is
// encrypted and passed through untouched: use it on plain SMTP links.
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

// Pipe forwards the client's bytes until a message ends, then cuts.
func (t *DataCut) Pipe(stub *toxics.ToxicStub) {
	p, _ := stub.State.(*Parser)
	if p == nil {
		p = new(Parser)
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
				continue // already cut: swallow whatever the client still sends
			}
			data, from := c.Data, 0
			if len(p.pending) > 0 {
				data = append(p.pending, c.Data...)
				from = len(p.pending)
				p.pending = nil
			}
			end, found := p.Feed(data[from:])
			if !found {
				hold := 0
				if t.Mode == ModeBefore && p.state == stData {
					// Withhold what may be the start of the terminator, so
					// that "before" never lets the final "." through even
					// when it arrives split over several chunks.
					hold = min(p.match, p.dataSeen, len(data))
				}
				if len(data)-hold > 0 {
					stub.Output <- &stream.StreamChunk{Data: data[:len(data)-hold], Timestamp: c.Timestamp}
				}
				if hold > 0 {
					p.pending = append([]byte(nil), data[len(data)-hold:]...)
				}
				continue
			}
			keep := from + end
			if t.Mode == ModeBefore {
				keep = max(from+p.termStart, 0)
			}
			if keep > 0 {
				stub.Output <- &stream.StreamChunk{Data: data[:keep], Timestamp: c.Timestamp}
			}
			p.cut = true
			// Closing the stub ends the upstream connection; Toxiproxy then
			// closes the client's side too, before any reply gets back.
			stub.Close()
			drain(stub)
			return
		}
	}
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
