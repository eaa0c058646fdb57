package check

import (
	"fmt"
	"strings"

	"github.com/mailchaos/mailchaos/history"
)

// The ledger: every (message, recipient) delivery classed against the
// last complete final-read round (see Class). The steps below fill the
// ledger summary from the checker's state; ledger composes them.

// ledger classes every delivery and judges the ledger.
func (c *checker) ledger(v *Verdict) (Result, []offender) {
	L := &v.Ledger
	L.Counts = map[Class]int64{}
	for _, cl := range Classes {
		L.Counts[cl] = 0
	}
	L.FirstRound, L.LastRound = c.completeRounds()
	L.FinalRead = L.LastRound > 0
	var foreign []finalRec
	if L.FinalRead {
		foreign = c.countCopies(L)
	}
	c.markExpunged()
	c.countSends(L)
	ev := c.newEvidence(CheckLedger)
	failing := map[Class]int64{}
	if L.FinalRead {
		c.classifyDeliveries(L, ev, failing)
		c.foreignCopies(L, ev, failing, foreign)
	}
	ledgerMetrics(v)
	res := ledgerResult(v, failing)
	res.EvidenceOmitted = ev.omitted
	return res, ev.items
}

// completeRounds returns the first and last complete final-read rounds
// (0, 0 if none).
func (c *checker) completeRounds() (first, last int) {
	for r := range c.rounds {
		if first == 0 || r < first {
			first = r
		}
		last = max(last, r)
	}
	return first, last
}

// countCopies counts each delivery's copies in the first and last
// complete rounds, and the corrupted ones in the last; it returns the
// last round's copies without an X-Mailchaos-Id.
func (c *checker) countCopies(L *LedgerSummary) []finalRec {
	var foreign []finalRec
	first, last := L.FirstRound, L.LastRound
	for i := range c.finals {
		f := &c.finals[i]
		if int(f.round) != first && int(f.round) != last {
			continue
		}
		if f.msg == none {
			if int(f.round) == last {
				foreign = append(foreign, *f)
				L.FinalCopies++
			}
			continue
		}
		d := c.deliv(f.msg, c.mboxUser[f.mbox])
		if int(f.round) == first {
			d.copiesFirst = sat16(d.copiesFirst)
		}
		if int(f.round) == last {
			L.FinalCopies++
			d.copiesLast = sat16(d.copiesLast)
			m := &c.msgs[f.msg]
			if f.hasHash && m.bits&mHash != 0 && f.hash != m.hash {
				d.corruptLast = sat16(d.corruptLast)
			}
		}
	}
	return foreign
}

// markExpunged marks the deliveries a client expunged: their absence is
// legitimate.
func (c *checker) markExpunged() {
	for _, a := range c.actions {
		if !a.expunge {
			continue
		}
		if msg := c.resolve(a); msg != none {
			c.deliv(msg, c.mboxUser[a.mbox]).expunged = true
		}
	}
}

// countSends counts the sending side per message.
func (c *checker) countSends(L *LedgerSummary) {
	for i := range c.msgs {
		m := &c.msgs[i]
		if m.bits&mSent == 0 {
			continue
		}
		L.Messages++
		switch {
		case m.accepted():
			L.Accepted++
		case m.indeterminate():
			L.Indeterminate++
		default:
			L.Failed++
		}
	}
}

// classifyDeliveries classes every delivery, counting each class and the
// failing ones, with their evidence.
func (c *checker) classifyDeliveries(L *LedgerSummary, ev *evidence, failing map[Class]int64) {
	first, last := L.FirstRound, L.LastRound
	multi := first != last
	for i := range c.msgs {
		m := &c.msgs[i]
		for di := m.firstDeliv; di >= 0; di = c.delivs[di].next {
			d := &c.delivs[di]
			cl := classify(m, d, multi)
			if cl == "" {
				continue
			}
			L.Deliveries++
			L.Counts[cl]++
			if !c.failingClass(cl) {
				continue
			}
			failing[cl]++
			ev.add(Evidence{
				Problem: string(cl),
				MsgID:   c.msgIDs.name(uint32(i)),
				Mailbox: c.users.names[d.user],
				Detail: fmt.Sprintf("%s; %d copies in final round %d (%d in round %d, %d with a different body hash), first seen %s",
					c.sendFacts(m), d.copiesLast, last, d.copiesFirst, first, d.corruptLast, fmtOffset(d.firstSeen)),
			})
		}
	}
}

// foreignCopies classes each copy without an X-Mailchaos-Id as unexpected.
func (c *checker) foreignCopies(L *LedgerSummary, ev *evidence, failing map[Class]int64, foreign []finalRec) {
	for _, f := range foreign {
		L.Deliveries++
		L.Counts[ClassUnexpected]++
		failing[ClassUnexpected]++
		ev.add(Evidence{
			Problem: string(ClassUnexpected),
			Mailbox: c.mboxes.names[f.mbox],
			UID:     f.uid,
			Detail:  fmt.Sprintf("message without an X-Mailchaos-Id in final round %d (line %d)", L.LastRound, f.line),
			Ops:     []OpRef{{Line: int64(f.line), Type: history.TypeFinal, Mailbox: c.mboxes.names[f.mbox], UID: f.uid}},
		})
	}
}

// ledgerMetrics sets the ledger's metrics; without a complete final read
// the class counts stay unmeasured, so that "lost == 0" cannot pass.
func ledgerMetrics(v *Verdict) {
	L := &v.Ledger
	for _, cl := range Classes {
		v.Metrics[metricName(cl)] = float64(L.Counts[cl])
	}
	v.Metrics["messages"] = float64(L.Messages)
	v.Metrics["accepted"] = float64(L.Accepted)
	v.Metrics["indeterminate"] = float64(L.Indeterminate)
	v.Metrics["failed"] = float64(L.Failed)
	v.Metrics["deliveries"] = float64(L.Deliveries)
	v.Metrics["final_copies"] = float64(L.FinalCopies)
	v.Metrics["final_read"] = b2f(L.FinalRead)
	if !L.FinalRead {
		for _, cl := range Classes {
			delete(v.Metrics, metricName(cl))
		}
		delete(v.Metrics, "deliveries")
		delete(v.Metrics, "final_copies")
	}
}

// ledgerResult judges the ledger: unknown without a complete final read
// (loss cannot be judged), failed if any delivery is in a failing class.
func ledgerResult(v *Verdict, failing map[Class]int64) Result {
	L := &v.Ledger
	res := Result{Name: CheckLedger}
	switch {
	case !L.FinalRead:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("no complete final read (no %s event): loss cannot be judged; %d messages sent, %d accepted", history.PhaseFinalReadDone, L.Messages, L.Accepted)
	case len(failing) > 0:
		res.Status = Failure
		var parts []string
		for _, cl := range Classes {
			if n := failing[cl]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, cl))
			}
		}
		res.Reason = fmt.Sprintf("%s of %d deliveries (%d messages accepted, final read round %d)", strings.Join(parts, ", "), L.Deliveries, L.Accepted, L.LastRound)
	default:
		res.Status = Success
		res.Reason = fmt.Sprintf("%d deliveries of %d accepted messages accounted for in final read round %d: %d ok, %d recovered, %d recovered-duplicate, %d late, %d not-delivered, %d expunged",
			L.Deliveries, L.Accepted, L.LastRound, L.Counts[ClassOK], L.Counts[ClassRecovered], L.Counts[ClassRecoveredDuplicate], L.Counts[ClassLate], L.Counts[ClassNotDelivered], L.Counts[ClassExpunged])
	}
	return res
}
