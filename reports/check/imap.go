package check

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mailchaos/mailchaos/history"
)

// The IMAP invariants: UIDVALIDITY stable, a UID never reused for another
// message, UIDs in arrival order, an expunged message never observed again,
// and flags a client set kept to the final read. Each invariant is a
// function that counts its violations into the IMAP summary and adds its
// evidence; imapInvariants composes them.

// evidence collects the offending items of one check: at most limit, the
// rest only counted.
type evidence struct {
	check   string
	limit   int
	items   []offender
	omitted int
}

// newEvidence returns the evidence collector of the named check.
func (c *checker) newEvidence(check string) *evidence {
	return &evidence{check: check, limit: c.maxEvidence()}
}

// add keeps e, or counts it once the list is full.
func (ev *evidence) add(e Evidence) {
	if len(ev.items) >= ev.limit {
		ev.omitted++
		return
	}
	ev.items = append(ev.items, offender{check: ev.check, ev: e})
}

// msgName is the X-Mailchaos-Id of message m, "" for none.
func (c *checker) msgName(m uint32) string {
	if m == none {
		return ""
	}
	return c.msgIDs.name(m)
}

// imapInvariants runs every IMAP invariant and judges them together.
func (c *checker) imapInvariants(v *Verdict) (Result, []offender) {
	S := &v.IMAP
	S.Mailboxes = int64(len(c.mboxes.names))
	S.Observations = c.obsCount
	S.UIDValidityChanges = []UIDValidityChange{}
	ev := c.newEvidence(CheckIMAP)
	changes := c.uidValidityChanges(S, ev)
	c.uidsReused(S, ev)
	acts := c.clientActions()
	c.expungedReappeared(S, ev, acts.expungedAt)
	if len(acts.wants) > 0 && v.Ledger.FinalRead {
		c.flagsLost(S, ev, acts, v.Ledger.LastRound)
	}
	c.uidOrder(S, ev)
	res := c.imapResult(v, changes, len(acts.wants) > 0)
	res.EvidenceOmitted = ev.omitted
	return res, ev.items
}

// uidValidityChanges finds each mailbox's UIDVALIDITY values, ordered by
// first observation; every change is a violation. It returns their count.
func (c *checker) uidValidityChanges(S *IMAPSummary, ev *evidence) int64 {
	byMbox := map[uint32][]uint32{} // mailbox -> its observed pairs
	for p, k := range c.pairKeys {
		if c.uidvObs[p].observed {
			byMbox[k.mbox] = append(byMbox[k.mbox], uint32(p))
		}
	}
	var changes int64
	for _, mb := range slices.Sorted(mapKeys(byMbox)) {
		ps := byMbox[mb]
		if len(ps) < 2 {
			continue
		}
		slices.SortFunc(ps, func(a, b uint32) int {
			return cmp.Or(cmp.Compare(c.uidvObs[a].first, c.uidvObs[b].first), cmp.Compare(c.pairKeys[a].uidv, c.pairKeys[b].uidv))
		})
		for i := 1; i < len(ps); i++ {
			changes++
			ch := UIDValidityChange{Mailbox: c.mboxes.names[mb], From: c.pairKeys[ps[i-1]].uidv, To: c.pairKeys[ps[i]].uidv, At: history.Offset(c.uidvObs[ps[i]].first)}
			if len(S.UIDValidityChanges) < ev.limit {
				S.UIDValidityChanges = append(S.UIDValidityChanges, ch)
			}
			ev.add(Evidence{Problem: "uidvalidity-changed", Mailbox: ch.Mailbox, At: ch.At,
				Detail: fmt.Sprintf("UIDVALIDITY %d -> %d, first observed at %s (old value last observed at %s)", ch.From, ch.To, ch.At, history.Offset(c.uidvObs[ps[i-1]].last))})
		}
	}
	return changes
}

// mapKeys yields the keys of m.
func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// uidsReused: a (mailbox, uidvalidity, uid) observed with two messages.
func (c *checker) uidsReused(S *IMAPSummary, ev *evidence) {
	S.UIDReused = int64(len(c.reusedList))
	for _, i := range c.reusedList {
		e := c.uidList[i]
		ev.add(Evidence{Problem: "uid-reused", MsgID: c.msgName(e.msg), Mailbox: c.mboxes.names[e.mbox], UID: e.uid, At: history.Offset(e.last),
			Detail: fmt.Sprintf("UID %d under UIDVALIDITY %d held %q and then another message", e.uid, e.uidv, c.msgName(e.msg))})
	}
}

// mk is a (mailbox, message) pair.
type mk struct{ mbox, msg uint32 }

// flagWant is what clients did to a message's flags in one mailbox, and
// what the final read showed.
type flagWant struct {
	flags   map[string]bool
	present bool  // the last final-read round found the message
	ok      bool  // one copy there shows every flag set
	line    int64 // the first store
}

// actions are the successful client expunges and stores, by pair.
type actions struct {
	expungedAt map[mk]imapAction // the earliest expunge
	wants      map[mk]*flagWant
}

// clientActions resolves the ok expunges and stores to their messages.
func (c *checker) clientActions() actions {
	acts := actions{expungedAt: map[mk]imapAction{}, wants: map[mk]*flagWant{}}
	for _, a := range c.actions {
		msg := c.resolve(a)
		if msg == none || !a.ok {
			continue
		}
		k := mk{a.mbox, msg}
		if a.expunge {
			if prev, ok := acts.expungedAt[k]; !ok || a.end < prev.end {
				acts.expungedAt[k] = a
			}
			continue
		}
		w := acts.wants[k]
		if w == nil {
			w = &flagWant{flags: map[string]bool{}, line: a.line}
			acts.wants[k] = w
		}
		for _, f := range c.flagList[a.flags] {
			w.flags[f] = true
		}
	}
	return acts
}

// expungedReappeared: a message observed in a mailbox after a client
// expunged it there.
func (c *checker) expungedReappeared(S *IMAPSummary, ev *evidence, expungedAt map[mk]imapAction) {
	if len(expungedAt) == 0 {
		return
	}
	for _, e := range c.uidList {
		if e.msg == none {
			continue
		}
		a, ok := expungedAt[mk{e.mbox, e.msg}]
		if !ok || e.last <= a.end {
			continue
		}
		S.Reappeared++
		ev.add(Evidence{Problem: "expunged-reappeared", MsgID: c.msgName(e.msg), Mailbox: c.mboxes.names[e.mbox], UID: e.uid, At: history.Offset(e.last),
			Detail: fmt.Sprintf("expunged (line %d, done at %s), observed again at UID %d at %s", a.line, history.Offset(a.end), e.uid, history.Offset(e.last))})
	}
}

// flagsLost: a message the final round found (and nobody expunged) with
// no copy showing every flag a client set on it.
func (c *checker) flagsLost(S *IMAPSummary, ev *evidence, acts actions, lastRound int) {
	for _, f := range c.finals {
		if int(f.round) != lastRound || f.msg == none {
			continue
		}
		w := acts.wants[mk{f.mbox, f.msg}]
		if w == nil {
			continue
		}
		w.present = true
		have := c.flagList[f.flags]
		all := true
		for fl := range w.flags {
			if !slices.Contains(have, fl) {
				all = false
			}
		}
		w.ok = w.ok || all
	}
	keys := slices.SortedFunc(mapKeys(acts.wants), func(a, b mk) int { return cmp.Or(cmp.Compare(a.msg, b.msg), cmp.Compare(a.mbox, b.mbox)) })
	for _, k := range keys {
		w := acts.wants[k]
		if !w.present || w.ok {
			continue
		}
		if _, gone := acts.expungedAt[k]; gone {
			continue
		}
		S.FlagsLost++
		fl := slices.Collect(mapKeys(w.flags))
		sort.Strings(fl)
		ev.add(Evidence{Problem: "flags-lost", MsgID: c.msgName(k.msg), Mailbox: c.mboxes.names[k.mbox],
			Detail: fmt.Sprintf("client set %s (first at line %d); the final read shows no copy with all of them", strings.Join(fl, " "), w.line)})
	}
}

// uidOrder checks UIDs against arrival: if message A was observed in a
// mailbox before message B was first submitted, B arrived later and must
// have a higher UID under the same UIDVALIDITY. Each (mailbox,
// uidvalidity) pair is walked in descending UID order: straight from its
// dense UID index when no UID needed the sparse map, else after sorting
// uidList in place (nothing reads uidList by index after this point).
func (c *checker) uidOrder(S *IMAPSummary, ev *evidence) {
	group := func(g []uint32) { c.uidOrderGroup(S, ev, g) }
	var g []uint32
	if len(c.uids) == 0 {
		type pk struct {
			k uidvKey
			p uint32
		}
		ps := make([]pk, 0, len(c.pairs))
		for k, p := range c.pairs {
			ps = append(ps, pk{k, p})
		}
		slices.SortFunc(ps, func(x, y pk) int { return cmp.Or(cmp.Compare(x.k.mbox, y.k.mbox), cmp.Compare(x.k.uidv, y.k.uidv)) })
		for _, p := range ps {
			g = g[:0]
			d := c.dense[p.p]
			for u := len(d) - 1; u >= 0; u-- {
				if d[u] != 0 {
					g = append(g, d[u]-1)
				}
			}
			group(g)
		}
		return
	}
	ul := c.uidList
	slices.SortFunc(ul, func(x, y uidEntry) int {
		return cmp.Or(cmp.Compare(x.mbox, y.mbox), cmp.Compare(x.uidv, y.uidv), cmp.Compare(y.uid, x.uid))
	})
	for i := 0; i < len(ul); {
		g = g[:0]
		j := i
		for ; j < len(ul) && ul[j].mbox == ul[i].mbox && ul[j].uidv == ul[i].uidv; j++ {
			g = append(g, uint32(j))
		}
		group(g)
		i = j
	}
}

// uidOrderGroup walks the uidList entries g of one pair, in descending UID
// order: minFirst is the earliest observation of a higher UID.
func (c *checker) uidOrderGroup(S *IMAPSummary, ev *evidence, g []uint32) {
	ul := c.uidList
	minFirst, minIdx := int64(-1), uint32(0)
	for _, j := range g {
		e := &ul[j]
		if e.msg != none && minFirst >= 0 {
			if s := c.msgs[e.msg].sendStart; s >= 0 && minFirst < s && ul[minIdx].msg != e.msg {
				S.UIDOrder++
				h := &ul[minIdx]
				ev.add(Evidence{Problem: "uid-order", MsgID: c.msgName(e.msg), Mailbox: c.mboxes.names[e.mbox], UID: e.uid, At: history.Offset(s),
					Detail: fmt.Sprintf("sent at %s but got UID %d, lower than UID %d of %q observed at %s", history.Offset(s), e.uid, h.uid, c.msgName(h.msg), history.Offset(h.first))})
			}
		}
		if minFirst < 0 || e.first < minFirst {
			minFirst, minIdx = e.first, j
		}
	}
}

// imapResult sets the IMAP metrics and judges the invariants: any
// violation fails; no observation, or flags set but no final read to
// check them against, is unknown.
func (c *checker) imapResult(v *Verdict, changes int64, flagsSet bool) Result {
	S := &v.IMAP
	res := Result{Name: CheckIMAP}
	v.Metrics["uidvalidity_changes"] = float64(changes)
	v.Metrics["uid_reused"] = float64(S.UIDReused)
	v.Metrics["uid_order"] = float64(S.UIDOrder)
	v.Metrics["reappeared"] = float64(S.Reappeared)
	v.Metrics["flags_lost"] = float64(S.FlagsLost)
	total := changes + S.UIDReused + S.UIDOrder + S.Reappeared + S.FlagsLost
	v.Metrics["imap_violations"] = float64(total)
	switch {
	case total > 0:
		res.Status = Failure
		var parts []string
		for _, p := range []struct {
			n    int64
			what string
		}{{changes, "UIDVALIDITY changes"}, {S.UIDReused, "reused UIDs"}, {S.UIDOrder, "UIDs out of arrival order"}, {S.Reappeared, "expunged messages reappeared"}, {S.FlagsLost, "messages lost their flags"}} {
			if p.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
			}
		}
		res.Reason = strings.Join(parts, ", ")
	case c.obsCount == 0:
		res.Status = Unknown
		res.Reason = "no IMAP observations (seen or final records) in the history"
	case !v.Ledger.FinalRead && flagsSet:
		res.Status = Unknown
		res.Reason = "flags set by clients cannot be checked without a complete final read"
	default:
		res.Status = Success
		res.Reason = fmt.Sprintf("%d observations of %d UIDs in %d mailboxes: UIDVALIDITY stable, UIDs unique and in arrival order, no expunged message reappeared, flags kept", c.obsCount, len(c.uidList), S.Mailboxes)
	}
	return res
}
