// Package synth writes synthetic histories of any size, streaming, for the
// checker's benchmarks and tests: shaped like a real run, deterministic,
// and encoded by history.AppendRecord like every other history. It is not
// a load generator and never touches a mail server.
package synth

import (
	"bufio"
	"fmt"
	"io"
	"strconv"

	"github.com/mailchaos/mailchaos/history"
)

// The shape of a generated run.
const (
	// Mailboxes is how many recipient mailboxes the messages go to, in turn.
	Mailboxes = 1000
	// Clients is how many SMTP clients send, in turn.
	Clients = 50
	// Step is the time between two messages.
	Step = 100_000 // ns
	// UIDValidity is every mailbox's UIDVALIDITY.
	UIDValidity = 1700000000
)

// Generate writes a history of n messages to w: 50 SMTP clients, 1000
// mailboxes, a message every 100 µs, 1% of sends retried after an
// indeterminate attempt, a fault every 100k messages with a burst of
// failed ops, IMAP fetch ops, seen records and one final-read round. Every
// message is accepted and found once, so the history's verdict is a
// success. Memory use does not grow with n.
func Generate(w io.Writer, n int) error {
	g := gen{w: bufio.NewWriterSize(w, 1<<20)}
	g.put(history.Record{Type: history.TypeHeader, Version: history.SchemaVersion, RunID: "bench", Seed: 1, Scenario: "bench"})
	for i := range n {
		g.message(i)
	}
	t := int64(n)*Step + 60e9
	g.put(phase(history.PhaseFinalRead, 1, t))
	for i := range n {
		f := message(i)
		g.put(history.Record{Type: history.TypeFinal, Client: "final-read", MsgID: f.id, Mailbox: f.mbox, UIDValidity: UIDValidity, UID: f.uid,
			BodySHA256: f.sum, Flags: []string{`\Seen`}, Attempt: 1, Start: history.Offset(t + int64(i)*1000)})
	}
	t += int64(n)*1000 + 1e9
	g.put(phase(history.PhaseFinalReadDone, 1, t))
	g.put(phase(history.PhaseDone, 0, t))
	if g.err != nil {
		return g.err
	}
	return g.w.Flush()
}

// gen encodes records into a buffered writer, keeping the first error.
type gen struct {
	w    *bufio.Writer
	line []byte
	err  error
}

func (g *gen) put(r history.Record) {
	if g.err != nil {
		return
	}
	if g.line, g.err = history.AppendRecord(g.line[:0], &r); g.err == nil {
		_, g.err = g.w.Write(g.line)
	}
}

// facts are what message i is: its ID, sender, recipient, mailbox, UID
// and body hash, all derived from i so that nothing is kept.
type facts struct {
	id, client, rcpt, mbox, sum string
	box                         int
	uid                         uint32
}

func message(i int) facts {
	box := i % Mailboxes
	client := i % Clients
	rcpt := fmt.Sprintf("user%04d@example.test", box+1)
	return facts{
		id:     "bench.smtp-" + strconv.Itoa(client) + "." + strconv.Itoa(i),
		client: "smtp-" + strconv.Itoa(client),
		rcpt:   rcpt,
		mbox:   rcpt + "/INBOX",
		sum:    fmt.Sprintf("%064x", i),
		box:    box,
		uid:    uint32(i/Mailboxes + 1),
	}
}

// message writes the records of message i: a fault with its burst every
// 100k messages, the send (with a retried indeterminate attempt for 1%),
// the seen record and the fetch.
func (g *gen) message(i int) {
	t := int64(i) * Step
	f := message(i)
	if i%100_000 == 50_000 {
		g.faultBurst(t, f)
	}
	start, end := t, t+20_000_000
	attempts := 1
	send := history.Record{Type: history.TypeOp, Client: f.client, Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, MsgID: f.id, Rcpt: []string{f.rcpt}, BodySHA256: f.sum}
	if i%100 == 7 {
		a := send
		a.Attempt, a.Start, a.End, a.Outcome, a.Class, a.Stage = 1, history.Offset(start), history.Offset(start+5_000_000), history.Indeterminate, "timeout", "data-end"
		g.put(a)
		a.Attempt, a.Start, a.End, a.Outcome, a.Class = 2, history.Offset(start+6_000_000), history.Offset(end), history.OK, "smtp:250 2.0.0"
		g.put(a)
		attempts = 2
	}
	op := send
	op.Scope, op.Attempt, op.Size, op.Start, op.End, op.Outcome, op.Class, op.Stage = history.ScopeOp, attempts, 20480, history.Offset(start), history.Offset(end), history.OK, "smtp:250 2.0.0", "data-end"
	g.put(op)
	seenAt := end + 30_000_000
	g.put(history.Record{Type: history.TypeSeen, Client: "imap-idle-" + strconv.Itoa(f.box), MsgID: f.id, Mailbox: f.mbox, UIDValidity: UIDValidity, UID: f.uid, Start: history.Offset(seenAt)})
	g.put(history.Record{Type: history.TypeOp, Client: "imap-poll-" + strconv.Itoa(f.box%20), Kind: history.KindIMAPFetch, Scope: history.ScopeOp, Attempt: 1, MsgID: f.id, Mailbox: f.mbox,
		UIDValidity: UIDValidity, UID: f.uid, BodySHA256: f.sum, Start: history.Offset(seenAt + 1_000_000), End: history.Offset(seenAt + 3_000_000), Outcome: history.OK, Stage: "fetch"})
}

// faultBurst writes a kill of mta-a, ten refused sends and the heal.
func (g *gen) faultBurst(t int64, f facts) {
	g.put(history.Record{Type: history.TypeEvent, Kind: history.KindFaultInject, Client: "nemesis", Name: "kill", Target: "mta-a", Start: history.Offset(t), End: history.Offset(t + 1000), Outcome: history.OK})
	for k := range 10 {
		s := t + int64(k)*1000
		g.put(history.Record{Type: history.TypeOp, Client: "smtp-99", Kind: history.KindSMTPSend, Scope: history.ScopeAttempt, Attempt: 1, MsgID: f.id + ".f" + strconv.Itoa(k), Rcpt: []string{f.rcpt},
			Start: history.Offset(s), End: history.Offset(s + 500), Outcome: history.Fail, Class: "conn-refused", Stage: "connect"})
	}
	g.put(history.Record{Type: history.TypeEvent, Kind: history.KindFaultHeal, Client: "nemesis", Name: "kill", Target: "mta-a", Start: history.Offset(t + 20_000), End: history.Offset(t + 30_000), Outcome: history.OK})
}

func phase(name history.Phase, round int, at int64) history.Record {
	return history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(name), Attempt: round, Start: history.Offset(at), End: history.Offset(at)}
}
