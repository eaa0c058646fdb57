package check

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/mailchaos/mailchaos/history"
)

// The replicas check. After the final read (through the client endpoint),
// the harness reads every mailbox replica directly: a stack whose
// replication is off would otherwise pass as long as the store the clients
// reach survives. Each replica read is framed by replica-read and
// replica-read-done events naming the replica (Target), and its final
// records carry the same Target. Items are (message ID, mailbox) pairs
// with an X-Mailchaos-Id: every pair the last complete final-read round
// found must be on every replica, with the body hash it was sent with.

// pairKey is a (message, mailbox) pair: msg<<32 | mailbox index.
func pairKey(msg, mbox uint32) uint64 { return uint64(msg)<<32 | uint64(mbox) }

// replicaItem is one offending pair of one replica, waiting to become
// evidence.
type replicaItem struct {
	missing bool
	key     uint64
	fin     uint32 // missing: index in finals of a copy the final read found
	rec     uint32 // corrupted: index in replicaRecs of the differing copy
}

// replicaCheck judges every replica read against the last complete
// final-read round. It
// runs after the ledger and the IMAP invariants and changes no state they
// read.
func (c *checker) replicaCheck(v *Verdict) (Result, []offender) {
	L := &v.Ledger
	res := Result{Name: CheckReplicas}

	// The pairs of the last complete round, sorted, one entry per pair
	// (the copy cited is the first in history order).
	type ref struct {
		key uint64
		idx uint32
	}
	var fk []ref
	if L.FinalRead {
		fk = make([]ref, 0, L.FinalCopies)
		for i := range c.finals {
			f := &c.finals[i]
			if int(f.round) == L.LastRound && f.msg != none {
				fk = append(fk, ref{pairKey(f.msg, f.mbox), uint32(i)})
			}
		}
		slices.SortFunc(fk, func(a, b ref) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.idx, b.idx)) })
		fk = slices.CompactFunc(fk, func(a, b ref) bool { return a.key == b.key })
	}

	// Replica mailboxes as the other records' mailbox indexes; one that
	// no other record named gets an index past them, so its pairs still
	// differ from each other and match nothing in the final read.
	rmb := make([]uint32, len(c.replicaMboxes.names))
	unknown := uint32(len(c.mboxes.names))
	for i, name := range c.replicaMboxes.names {
		if j, ok := c.mboxes.m[name]; ok {
			rmb[i] = j
		} else {
			rmb[i], unknown = unknown, unknown+1
		}
	}

	// The records of each replica's judged read (its last complete
	// attempt), sorted by replica and pair.
	type rref struct {
		rep uint32
		key uint64
		idx uint32
	}
	sums := make([]ReplicaSummary, len(c.replicas))
	rk := make([]rref, 0, len(c.replicaRecs))
	for i := range c.replicaRecs {
		r := &c.replicaRecs[i]
		st := &c.replicas[r.replica]
		if st.done == 0 || r.attempt != st.done {
			continue
		}
		sums[r.replica].Copies++
		if r.msg != none {
			rk = append(rk, rref{r.replica, pairKey(r.msg, rmb[r.mbox]), uint32(i)})
		}
	}
	slices.SortFunc(rk, func(a, b rref) int {
		return cmp.Or(cmp.Compare(a.rep, b.rep), cmp.Compare(a.key, b.key), cmp.Compare(a.idx, b.idx))
	})

	limit := c.maxEvidence()
	items := make([][]replicaItem, len(c.replicas)) // at most limit per replica
	seg := rk
	for ri := range c.replicas {
		st := &c.replicas[ri]
		s := &sums[ri]
		s.Name = c.replicaNames.names[ri]
		// This replica's records are the head of seg.
		n := 0
		for n < len(seg) && int(seg[n].rep) == ri {
			n++
		}
		recs := seg[:n]
		seg = seg[n:]
		if st.done == 0 {
			continue
		}
		s.Complete, s.Attempt = true, int(st.done)
		add := func(it replicaItem) {
			if len(items[ri]) < limit {
				items[ri] = append(items[ri], it)
			}
		}
		// Merge the final read's pairs with the replica's.
		i, j := 0, 0
		for i < len(fk) || j < len(recs) {
			if j == len(recs) || (i < len(fk) && fk[i].key < recs[j].key) {
				s.Missing++
				add(replicaItem{missing: true, key: fk[i].key, fin: fk[i].idx})
				i++
				continue
			}
			key := recs[j].key
			if i < len(fk) && fk[i].key == key {
				i++
			} else {
				s.Extra++
			}
			differs, found := uint32(0), false
			for ; j < len(recs) && recs[j].key == key; j++ {
				r := &c.replicaRecs[recs[j].idx]
				m := &c.msgs[r.msg]
				if !found && r.hasHash && m.bits&mHash != 0 && r.hash != m.hash {
					differs, found = recs[j].idx, true
				}
			}
			if found {
				s.Corrupted++
				add(replicaItem{key: key, rec: differs})
			}
		}
		if !L.FinalRead {
			// Nothing to compare with: only corruption is known.
			s.Missing, s.Extra = 0, 0
			items[ri] = slices.DeleteFunc(items[ri], func(it replicaItem) bool { return it.missing })
		}
	}

	// Everything below goes by replica name.
	order := make([]int, len(c.replicas))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(sums[a].Name, sums[b].Name) })
	var complete, incomplete []int
	var missing, corrupted, extra, bad int64
	for _, ri := range order {
		s := &sums[ri]
		if !s.Complete {
			incomplete = append(incomplete, ri)
			continue
		}
		complete = append(complete, ri)
		missing += s.Missing
		corrupted += s.Corrupted
		extra += s.Extra
		if s.Missing+s.Corrupted > 0 {
			bad++
		}
	}
	for _, ri := range order {
		v.Replicas = append(v.Replicas, sums[ri])
	}

	// Evidence: the replicas take turns, so that each failing one is shown.
	var offs []offender
	total := missing + corrupted
	for k := 0; len(offs) < limit; k++ {
		took := false
		for _, ri := range order {
			if k < len(items[ri]) && len(offs) < limit {
				offs = append(offs, offender{check: CheckReplicas, ev: c.replicaEvidence(v, ri, items[ri][k])})
				took = true
			}
		}
		if !took {
			break
		}
	}
	res.EvidenceOmitted = int(total) - len(offs)

	// Metrics: a count that an unread replica could still raise is not
	// measured, unless a complete replica already fails.
	allRead := len(incomplete) == 0
	v.Metrics["replicas_read"] = float64(len(complete))
	if allRead || bad > 0 {
		v.Metrics["replica_corrupted"] = float64(corrupted)
		if L.FinalRead {
			v.Metrics["replica_missing"] = float64(missing)
		}
	}
	if allRead && L.FinalRead {
		v.Metrics["replica_extra"] = float64(extra)
	}

	names := func(idx []int) string {
		var s []string
		for _, ri := range idx {
			s = append(s, c.replicaNames.names[ri])
		}
		return strings.Join(s, ", ")
	}
	notRead := ""
	if len(incomplete) > 0 {
		notRead = fmt.Sprintf("%s not judged (no %s)", names(incomplete), history.PhaseReplicaReadDone)
	}
	switch {
	case bad > 0:
		res.Status = Failure
		var parts []string
		for _, ri := range complete {
			s := &sums[ri]
			var p []string
			if s.Missing > 0 {
				p = append(p, fmt.Sprintf("lacks %d of %d messages the final read found", s.Missing, len(fk)))
			}
			if s.Corrupted > 0 {
				p = append(p, fmt.Sprintf("holds %d with a different body hash", s.Corrupted))
			}
			if len(p) > 0 {
				parts = append(parts, s.Name+" "+strings.Join(p, " and "))
			}
		}
		if notRead != "" {
			parts = append(parts, notRead)
		}
		res.Reason = strings.Join(parts, "; ")
	case len(incomplete) > 0:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("replica read incomplete: %s", notRead)
	case !L.FinalRead:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("no complete final read (no %s event): nothing to compare %d replica(s) with", history.PhaseFinalReadDone, len(complete))
	default:
		res.Status = Success
		who := fmt.Sprintf("%d replicas hold", len(complete))
		if len(complete) == 1 {
			who = c.replicaNames.names[complete[0]] + " holds"
		}
		res.Reason = fmt.Sprintf("%s every message the final read found (%d messages in final read round %d; %d extra on the replicas)", who, len(fk), L.LastRound, extra)
	}
	return res, offs
}

// replicaEvidence describes one offending pair of replica ri.
func (c *checker) replicaEvidence(v *Verdict, ri int, it replicaItem) Evidence {
	name := c.replicaNames.names[ri]
	st := &c.replicas[ri]
	msg := uint32(it.key >> 32)
	m := &c.msgs[msg]
	if it.missing {
		f := &c.finals[it.fin]
		return Evidence{Problem: "replica-missing", MsgID: c.msgIDs.name(msg), Mailbox: c.mboxes.names[f.mbox],
			Detail: fmt.Sprintf("replica %s has no copy (its read %d completed at line %d); final read round %d found it at UID %d (line %d); %s",
				name, st.done, st.doneLine, v.Ledger.LastRound, f.uid, f.line, c.sendFacts(m))}
	}
	r := &c.replicaRecs[it.rec]
	return Evidence{Problem: "replica-corrupted", MsgID: c.msgIDs.name(msg), Mailbox: c.replicaMboxes.names[r.mbox], UID: r.uid,
		Detail: fmt.Sprintf("replica %s holds a copy at UID %d (line %d) whose body hash differs from the one sent; %s", name, r.uid, r.line, c.sendFacts(m))}
}
