package check

import (
	"fmt"
	"strings"

	"github.com/mailchaos/mailchaos/history"
)

// The ledger: every (message, recipient) delivery classed against the
// last complete final-read round (see Class). The steps below fill the
// ledger summary from the checker's state; ledger composes them.

// ledger classes every delivery against the sealed model and judges the
// ledger.
func (md *model) ledger(v *Verdict) Result {
	L := &v.Ledger
	L.Counts = map[Class]int64{}
	for _, cl := range Classes {
		L.Counts[cl] = 0
	}
	L.FirstRound, L.LastRound = md.firstRound, md.lastRound
	L.FinalRead = L.LastRound > 0
	L.FinalCopies = md.finalCopies
	L.Messages, L.Accepted, L.Indeterminate, L.Failed = md.sends.messages, md.sends.accepted, md.sends.indeterminate, md.sends.failed
	ev := md.newEvidence(CheckLedger)
	failing := map[Class]int64{}
	if L.FinalRead {
		md.classifyDeliveries(L, ev, failing)
		md.foreignCopies(L, ev, failing)
	}
	ledgerMetrics(v)
	res := ledgerResult(v, failing)
	ev.into(&res)
	return res
}

// classifyDeliveries classes every delivery, counting each class and the
// failing ones, with their evidence.
func (md *model) classifyDeliveries(L *LedgerSummary, ev *evidence, failing map[Class]int64) {
	first, last := L.FirstRound, L.LastRound
	multi := first != last
	for i := range md.msgs {
		m := &md.msgs[i]
		for di := m.firstDeliv; di >= 0; di = md.delivs[di].next {
			d := &md.delivs[di]
			cl := classify(m, d, multi)
			if cl == "" {
				continue
			}
			L.Deliveries++
			L.Counts[cl]++
			if !md.failingClass(cl) {
				continue
			}
			failing[cl]++
			ev.add(Evidence{
				Problem: string(cl),
				MsgID:   md.msgIDs.name(uint32(i)),
				Mailbox: md.users.names[d.user],
				Detail: fmt.Sprintf("%s; %d copies in final round %d (%d in round %d, %d with a different body hash), first seen %s",
					md.sendFacts(m), d.copiesLast, last, d.copiesFirst, first, d.corruptLast, fmtOffset(d.firstSeen)),
			})
		}
	}
}

// foreignCopies classes each copy without an X-Mailchaos-Id as unexpected.
func (md *model) foreignCopies(L *LedgerSummary, ev *evidence, failing map[Class]int64) {
	for i := range md.foreign {
		f := &md.foreign[i]
		mbox, uid := md.mboxes.names[md.finalMbox(f)], md.finalUID(f)
		L.Deliveries++
		L.Counts[ClassUnexpected]++
		failing[ClassUnexpected]++
		ev.add(Evidence{
			Problem: string(ClassUnexpected),
			Mailbox: mbox,
			UID:     uid,
			Detail:  fmt.Sprintf("message without an X-Mailchaos-Id in final round %d (line %d)", L.LastRound, f.line),
			Ops:     []OpRef{{Line: int64(f.line), Type: history.TypeFinal, Mailbox: mbox, UID: uid}},
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
