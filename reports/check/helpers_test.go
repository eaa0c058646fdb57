package check

import (
	"context"
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

// Builders for small histories. Times are in milliseconds to keep tables
// readable; ms converts them to offsets.

const u1 = "user0001@example.test"
const u2 = "user0002@example.test"
const inbox1 = u1 + "/INBOX"
const inbox2 = u2 + "/INBOX"

func ms(n int) history.Offset { return history.Offset(int64(n) * 1e6) }

func hdr() history.Record {
	return history.Record{Type: history.TypeHeader, Version: history.SchemaVersion, RunID: "run-t", Seed: 7, Scenario: "unit"}
}

func hash(id string) string { return "hash-of-" + id }

// send is an smtp.send op (scope op) to u1 unless rcpt is given.
func send(id string, out history.Outcome, start, end int, rcpt ...string) history.Record {
	if len(rcpt) == 0 {
		rcpt = []string{u1}
	}
	return history.Record{Type: history.TypeOp, Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: 1,
		MsgID: id, Rcpt: rcpt, BodySHA256: hash(id), Outcome: out, Start: ms(start), End: ms(end), Stage: "data-end"}
}

// att is one smtp.send attempt to u1.
func att(id string, n int, out history.Outcome, start, end int) history.Record {
	r := send(id, out, start, end)
	r.Scope, r.Attempt = history.ScopeAttempt, n
	return r
}

func withAttempts(r history.Record, n int) history.Record { r.Attempt = n; return r }

func fin(id, mbox string, uid uint32, round int) history.Record {
	return history.Record{Type: history.TypeFinal, MsgID: id, Mailbox: mbox, UIDValidity: 1, UID: uid, BodySHA256: hash(id), Attempt: round, Start: ms(100000 + round*1000 + int(uid))}
}

func finFlags(id, mbox string, uid uint32, round int, flags ...string) history.Record {
	r := fin(id, mbox, uid, round)
	r.Flags = flags
	return r
}

func seen(id, mbox string, uid uint32, at int) history.Record {
	return history.Record{Type: history.TypeSeen, Client: "imap-idle-1", MsgID: id, Mailbox: mbox, UIDValidity: 1, UID: uid, Start: ms(at)}
}

func phase(name history.Phase, round, at int) history.Record {
	return history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(name), Attempt: round, Start: ms(at), End: ms(at)}
}

func done(round int) history.Record {
	return phase(history.PhaseFinalReadDone, round, 99000+round*1000)
}

func fault(kind history.Kind, name, target string, start, end int) history.Record {
	return history.Record{Type: history.TypeEvent, Kind: kind, Client: "nemesis", Name: name, Target: target, Start: ms(start), End: ms(end), Outcome: history.OK}
}

func imapOp(kind history.Kind, out history.Outcome, start, end int, stage string) history.Record {
	return history.Record{Type: history.TypeOp, Client: "imap-1", Kind: kind, Scope: history.ScopeOp, Attempt: 1, Outcome: out, Start: ms(start), End: ms(end), Stage: stage, Mailbox: inbox1}
}

// mkHist is a whole history: the header, recs, and the done event a run
// writes last (at the latest offset of recs, so spans are unchanged).
func mkHist(recs ...history.Record) []history.Record {
	var end history.Offset
	for _, r := range recs {
		end = max(end, r.Start, r.End)
	}
	last := phase(history.PhaseDone, 0, 0)
	last.Start, last.End = end, end
	return append(cutHist(recs...), last)
}

// cutHist is a history cut before its done event: the header and recs.
func cutHist(recs ...history.Record) []history.Record {
	return append([]history.Record{hdr()}, recs...)
}

func mustRun(t *testing.T, recs []history.Record, p Policy) Verdict {
	t.Helper()
	v, err := RunRecords(context.Background(), recs, p)
	if err != nil {
		t.Fatalf("RunRecords: %v", err)
	}
	return v
}

func result(v Verdict, name string) Result {
	for _, r := range v.Checks {
		if r.Name == name {
			return r
		}
	}
	return Result{}
}
