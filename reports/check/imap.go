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
// rest only counted. The check's result carries them (into); Run then
// cites each item's history lines.
type evidence struct {
	limit   int
	items   []Evidence
	omitted int
}

// newEvidence returns the evidence collector of the named check.
func (md *model) newEvidence(check string) *evidence {
	return &evidence{limit: md.maxEvidence()}
}

// add keeps e, or counts it once the list is full.
func (ev *evidence) add(e Evidence) {
	if len(ev.items) >= ev.limit {
		ev.omitted++
		return
	}
	ev.items = append(ev.items, e)
}

// into hands the items to the check's result.
func (ev *evidence) into(res *Result) {
	res.Evidence = append(res.Evidence, ev.items...)
	res.EvidenceOmitted += ev.omitted
}

// msgName is the X-Mailchaos-Id of message m, "" for none.
func (md *model) msgName(m uint32) string {
	if m == none {
		return ""
	}
	return md.msgIDs.name(m)
}

// imapInvariants runs every IMAP invariant and judges them together.
func (md *model) imapInvariants(v *Verdict) Result {
	S := &v.IMAP
	S.Mailboxes = int64(len(md.mboxes.names))
	S.Observations = md.obsCount
	S.UIDValidityChanges = []UIDValidityChange{}
	ev := md.newEvidence(CheckIMAP)
	changes := md.uidValidityChanges(S, ev)
	md.uidsReused(S, ev)
	acts := md.clientActions()
	md.expungedReappeared(S, ev, acts.expungedAt)
	if len(acts.wants) > 0 && md.lastRound > 0 {
		md.flagsLost(S, ev, acts, md.lastRound)
	}
	md.uidOrder(S, ev)
	res := md.imapResult(v, changes, len(acts.wants) > 0)
	ev.into(&res)
	return res
}

// uidValidityChanges finds each mailbox's UIDVALIDITY values, ordered by
// first observation; every change is a violation. It returns their count.
func (md *model) uidValidityChanges(S *IMAPSummary, ev *evidence) int64 {
	byMbox := map[uint32][]uint32{} // mailbox -> its observed pairs
	for p, k := range md.pairKeys {
		if md.uidvObs[p].observed {
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
			return cmp.Or(cmp.Compare(md.uidvObs[a].first, md.uidvObs[b].first), cmp.Compare(md.pairKeys[a].uidv, md.pairKeys[b].uidv))
		})
		for i := 1; i < len(ps); i++ {
			changes++
			ch := UIDValidityChange{Mailbox: md.mboxes.names[mb], From: md.pairKeys[ps[i-1]].uidv, To: md.pairKeys[ps[i]].uidv, At: history.Offset(md.uidvObs[ps[i]].first)}
			if len(S.UIDValidityChanges) < ev.limit {
				S.UIDValidityChanges = append(S.UIDValidityChanges, ch)
			}
			ev.add(Evidence{Problem: "uidvalidity-changed", Mailbox: ch.Mailbox, At: ch.At,
				Detail: fmt.Sprintf("UIDVALIDITY %d -> %d, first observed at %s (old value last observed at %s)", ch.From, ch.To, ch.At, history.Offset(md.uidvObs[ps[i-1]].last))})
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
func (md *model) uidsReused(S *IMAPSummary, ev *evidence) {
	S.UIDReused = int64(len(md.reusedList))
	for _, i := range md.reusedList {
		e := md.uidList[i]
		ev.add(Evidence{Problem: "uid-reused", MsgID: md.msgName(e.msg), Mailbox: md.mboxes.names[md.entryMbox(&e)], UID: e.uid, At: history.Offset(e.last),
			Detail: fmt.Sprintf("UID %d under UIDVALIDITY %d held %q and then another message", e.uid, md.entryUIDV(&e), md.msgName(e.msg))})
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
func (md *model) clientActions() actions {
	acts := actions{expungedAt: map[mk]imapAction{}, wants: map[mk]*flagWant{}}
	for _, a := range md.actions {
		msg := md.resolve(a)
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
		for _, f := range md.flagList[a.flags] {
			w.flags[f] = true
		}
	}
	return acts
}

// expungedReappeared: a message observed in a mailbox after a client
// expunged it there.
func (md *model) expungedReappeared(S *IMAPSummary, ev *evidence, expungedAt map[mk]imapAction) {
	if len(expungedAt) == 0 {
		return
	}
	for i := range md.uidList {
		e := &md.uidList[i]
		if e.msg == none {
			continue
		}
		a, ok := expungedAt[mk{md.entryMbox(e), e.msg}]
		if !ok || e.last <= a.end {
			continue
		}
		S.Reappeared++
		ev.add(Evidence{Problem: "expunged-reappeared", MsgID: md.msgName(e.msg), Mailbox: md.mboxes.names[md.entryMbox(e)], UID: e.uid, At: history.Offset(e.last),
			Detail: fmt.Sprintf("expunged (line %d, done at %s), observed again at UID %d at %s", a.line, history.Offset(a.end), e.uid, history.Offset(e.last))})
	}
}

// flagsLost: a message the final round found (and nobody expunged) with
// no copy showing every flag a client set on it.
func (md *model) flagsLost(S *IMAPSummary, ev *evidence, acts actions, lastRound int) {
	for _, f := range md.finals {
		if int(f.round) != lastRound || f.msg == none {
			continue
		}
		w := acts.wants[mk{md.finalMbox(&f), f.msg}]
		if w == nil {
			continue
		}
		w.present = true
		have := md.flagList[f.flags]
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
		ev.add(Evidence{Problem: "flags-lost", MsgID: md.msgName(k.msg), Mailbox: md.mboxes.names[k.mbox],
			Detail: fmt.Sprintf("client set %s (first at line %d); the final read shows no copy with all of them", strings.Join(fl, " "), w.line)})
	}
}

// uidOrder checks UIDs against arrival: if message A was observed in a
// mailbox before message B was first submitted, B arrived later and must
// have a higher UID under the same UIDVALIDITY. Each (mailbox,
// uidvalidity) pair is walked in descending UID order: straight from its
// dense UID index when no UID needed the sparse map, else in a sorted
// order of uidList's indexes.
func (md *model) uidOrder(S *IMAPSummary, ev *evidence) {
	group := func(g []uint32) { md.uidOrderGroup(S, ev, g) }
	var g []uint32
	if len(md.uids) == 0 {
		type pk struct {
			k uidvKey
			p uint32
		}
		ps := make([]pk, 0, len(md.pairs))
		for k, p := range md.pairs {
			ps = append(ps, pk{k, p})
		}
		slices.SortFunc(ps, func(x, y pk) int { return cmp.Or(cmp.Compare(x.k.mbox, y.k.mbox), cmp.Compare(x.k.uidv, y.k.uidv)) })
		for _, p := range ps {
			g = g[:0]
			d := md.dense[p.p]
			for u := len(d) - 1; u >= 0; u-- {
				if d[u] != 0 {
					g = append(g, d[u]-1)
				}
			}
			group(g)
		}
		return
	}
	// Some UIDs are in the sparse map: walk an order of uidList sorted by
	// pair and descending UID (uidList itself keeps its order: finals
	// point into it).
	ul := md.uidList
	order := make([]uint32, len(ul))
	for i := range order {
		order[i] = uint32(i)
	}
	key := func(i uint32) uidvKey { return md.pairKeys[ul[i].pair] }
	slices.SortFunc(order, func(x, y uint32) int {
		kx, ky := key(x), key(y)
		return cmp.Or(cmp.Compare(kx.mbox, ky.mbox), cmp.Compare(kx.uidv, ky.uidv), cmp.Compare(ul[y].uid, ul[x].uid))
	})
	for i := 0; i < len(order); {
		j := i
		for ; j < len(order) && key(order[j]) == key(order[i]); j++ {
		}
		group(order[i:j])
		i = j
	}
}

// uidOrderGroup walks the uidList entries g of one pair, in descending UID
// order: minFirst is the earliest observation of a higher UID.
func (md *model) uidOrderGroup(S *IMAPSummary, ev *evidence, g []uint32) {
	ul := md.uidList
	minFirst, minIdx := int64(-1), uint32(0)
	for _, j := range g {
		e := &ul[j]
		if e.msg != none && minFirst >= 0 {
			if s := md.msgs[e.msg].sendStart; s >= 0 && minFirst < s && ul[minIdx].msg != e.msg {
				S.UIDOrder++
				h := &ul[minIdx]
				ev.add(Evidence{Problem: "uid-order", MsgID: md.msgName(e.msg), Mailbox: md.mboxes.names[md.entryMbox(e)], UID: e.uid, At: history.Offset(s),
					Detail: fmt.Sprintf("sent at %s but got UID %d, lower than UID %d of %q observed at %s", history.Offset(s), e.uid, h.uid, md.msgName(h.msg), history.Offset(h.first))})
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
func (md *model) imapResult(v *Verdict, changes int64, flagsSet bool) Result {
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
	case md.obsCount == 0:
		res.Status = Unknown
		res.Reason = "no IMAP observations (seen or final records) in the history"
	case md.lastRound == 0 && flagsSet:
		res.Status = Unknown
		res.Reason = "flags set by clients cannot be checked without a complete final read"
	default:
		res.Status = Success
		res.Reason = fmt.Sprintf("%d observations of %d UIDs in %d mailboxes: UIDVALIDITY stable, UIDs unique and in arrival order, no expunged message reappeared, flags kept", md.obsCount, len(md.uidList), S.Mailboxes)
	}
	return res
}
