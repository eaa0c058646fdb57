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

// ref is a pair and the index of one of its records.
type ref struct {
	key uint64
	idx uint32
}

// rref is a pair of one replica and the index of its record.
type rref struct {
	rep uint32
	key uint64
	idx uint32
}

// replicaTally is the replicas check's totals over the complete reads.
type replicaTally struct {
	complete, incomplete      []int // replica indexes, by name
	missing, corrupted, extra int64
	bad                       int64 // complete replicas that lack or corrupt a pair
}

// replicaCheck judges every replica read against the last complete
// final-read round. It runs after the ledger and the IMAP invariants and
// changes no state they read.
func (md *model) replicaCheck(v *Verdict) Result {
	finalRead := md.lastRound > 0
	fk := md.lastRoundPairs()
	sums, rk := md.judgedReplicaRecs()
	limit := md.maxEvidence()
	items := make([][]replicaItem, len(md.replicas)) // at most limit per replica
	seg := rk
	for ri := range md.replicas {
		// This replica's records are the head of seg.
		n := 0
		for n < len(seg) && int(seg[n].rep) == ri {
			n++
		}
		sums[ri].Name = md.replicaNames.names[ri]
		if md.replicas[ri].done != 0 {
			items[ri] = md.compareReplica(&sums[ri], ri, fk, seg[:n], limit, finalRead)
		}
		seg = seg[n:]
	}
	order := make([]int, len(md.replicas))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(sums[a].Name, sums[b].Name) })
	t := tallyReplicas(sums, order)
	for _, ri := range order {
		v.Replicas = append(v.Replicas, sums[ri])
	}
	evs := md.replicaEvidenceTurns(order, items, limit)
	replicaMetrics(v, t, finalRead)
	res := md.replicaResult(v, t, sums, len(fk))
	res.Evidence = evs
	res.EvidenceOmitted = int(t.missing+t.corrupted) - len(evs)
	return res
}

// lastRoundPairs returns the pairs of the last complete round, sorted, one
// entry per pair (the copy cited is the first in history order).
func (md *model) lastRoundPairs() []ref {
	if md.lastRound == 0 {
		return nil
	}
	fk := make([]ref, 0, md.finalCopies)
	for i := range md.finals {
		f := &md.finals[i]
		if int(f.round) == md.lastRound && f.msg != none {
			fk = append(fk, ref{pairKey(f.msg, md.finalMbox(f)), uint32(i)})
		}
	}
	slices.SortFunc(fk, func(a, b ref) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.idx, b.idx)) })
	return slices.CompactFunc(fk, func(a, b ref) bool { return a.key == b.key })
}

// replicaMailboxes maps replica mailboxes to the other records' mailbox
// indexes; one that no other record named gets an index past them, so its
// pairs still differ from each other and match nothing in the final read.
func (md *model) replicaMailboxes() []uint32 {
	rmb := make([]uint32, len(md.replicaMboxes.names))
	unknown := uint32(len(md.mboxes.names))
	for i, name := range md.replicaMboxes.names {
		if j, ok := md.mboxes.m[name]; ok {
			rmb[i] = j
		} else {
			rmb[i], unknown = unknown, unknown+1
		}
	}
	return rmb
}

// judgedReplicaRecs returns a summary per replica with its judged read's
// copies counted, and the records of each replica's judged read (its last
// complete attempt), sorted by replica and pair.
func (md *model) judgedReplicaRecs() ([]ReplicaSummary, []rref) {
	rmb := md.replicaMailboxes()
	sums := make([]ReplicaSummary, len(md.replicas))
	rk := make([]rref, 0, len(md.replicaRecs))
	for i := range md.replicaRecs {
		r := &md.replicaRecs[i]
		st := &md.replicas[r.replica]
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
	return sums, rk
}

// compareReplica merges the final read's pairs fk with the records recs of
// replica ri's judged read, counting into s and returning at most limit
// offending items.
func (md *model) compareReplica(s *ReplicaSummary, ri int, fk []ref, recs []rref, limit int, finalRead bool) []replicaItem {
	s.Complete, s.Attempt = true, int(md.replicas[ri].done)
	var items []replicaItem
	add := func(it replicaItem) {
		if len(items) < limit {
			items = append(items, it)
		}
	}
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
		var differs uint32
		var found bool
		differs, found, j = md.differingCopy(recs, j, key)
		if found {
			s.Corrupted++
			add(replicaItem{key: key, rec: differs})
		}
	}
	if !finalRead {
		// Nothing to compare with: only corruption is known.
		s.Missing, s.Extra = 0, 0
		items = slices.DeleteFunc(items, func(it replicaItem) bool { return it.missing })
	}
	return items
}

// differingCopy walks the records of pair key from recs[j] and returns the
// first whose body hash differs from the one sent, and the index past them.
func (md *model) differingCopy(recs []rref, j int, key uint64) (uint32, bool, int) {
	differs, found := uint32(0), false
	for ; j < len(recs) && recs[j].key == key; j++ {
		r := &md.replicaRecs[recs[j].idx]
		m := &md.msgs[r.msg]
		if !found && r.hasHash && m.hashKnown() && r.hash != m.hash {
			differs, found = recs[j].idx, true
		}
	}
	return differs, found, j
}

// tallyReplicas sums the complete replicas' counts, by name.
func tallyReplicas(sums []ReplicaSummary, order []int) replicaTally {
	var t replicaTally
	for _, ri := range order {
		s := &sums[ri]
		if !s.Complete {
			t.incomplete = append(t.incomplete, ri)
			continue
		}
		t.complete = append(t.complete, ri)
		t.missing += s.Missing
		t.corrupted += s.Corrupted
		t.extra += s.Extra
		if s.Missing+s.Corrupted > 0 {
			t.bad++
		}
	}
	return t
}

// replicaEvidenceTurns makes the evidence: the replicas take turns, so
// that each failing one is shown.
func (md *model) replicaEvidenceTurns(order []int, items [][]replicaItem, limit int) []Evidence {
	var offs []Evidence
	for k := 0; len(offs) < limit; k++ {
		took := false
		for _, ri := range order {
			if k < len(items[ri]) && len(offs) < limit {
				offs = append(offs, md.replicaEvidence(ri, items[ri][k]))
				took = true
			}
		}
		if !took {
			break
		}
	}
	return offs
}

// replicaMetrics: a count that an unread replica could still raise is not
// measured, unless a complete replica already fails.
func replicaMetrics(v *Verdict, t replicaTally, finalRead bool) {
	allRead := len(t.incomplete) == 0
	v.Metrics["replicas_read"] = float64(len(t.complete))
	if allRead || t.bad > 0 {
		v.Metrics["replica_corrupted"] = float64(t.corrupted)
		if finalRead {
			v.Metrics["replica_missing"] = float64(t.missing)
		}
	}
	if allRead && finalRead {
		v.Metrics["replica_extra"] = float64(t.extra)
	}
}

// replicaResult judges the replicas: a complete replica that lacks or
// corrupts a pair fails; an unread replica or no final read is unknown.
func (md *model) replicaResult(v *Verdict, t replicaTally, sums []ReplicaSummary, pairs int) Result {
	res := Result{Name: CheckReplicas}
	names := func(idx []int) string {
		var s []string
		for _, ri := range idx {
			s = append(s, md.replicaNames.names[ri])
		}
		return strings.Join(s, ", ")
	}
	notRead := ""
	if len(t.incomplete) > 0 {
		notRead = fmt.Sprintf("%s not judged (no %s)", names(t.incomplete), history.PhaseReplicaReadDone)
	}
	switch {
	case t.bad > 0:
		res.Status = Failure
		res.Reason = replicaFailures(t, sums, pairs, notRead)
	case len(t.incomplete) > 0:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("replica read incomplete: %s", notRead)
	case md.lastRound == 0:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("no complete final read (no %s event): nothing to compare %d replica(s) with", history.PhaseFinalReadDone, len(t.complete))
	default:
		res.Status = Success
		who := fmt.Sprintf("%d replicas hold", len(t.complete))
		if len(t.complete) == 1 {
			who = md.replicaNames.names[t.complete[0]] + " holds"
		}
		res.Reason = fmt.Sprintf("%s every message the final read found (%d messages in final read round %d; %d extra on the replicas)", who, pairs, md.lastRound, t.extra)
	}
	return res
}

// replicaFailures is the reason of a failed replicas check: what each
// complete replica lacks or corrupts, then the replicas not read.
func replicaFailures(t replicaTally, sums []ReplicaSummary, pairs int, notRead string) string {
	var parts []string
	for _, ri := range t.complete {
		s := &sums[ri]
		var p []string
		if s.Missing > 0 {
			p = append(p, fmt.Sprintf("lacks %d of %d messages the final read found", s.Missing, pairs))
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
	return strings.Join(parts, "; ")
}

// replicaEvidence describes one offending pair of replica ri.
func (md *model) replicaEvidence(ri int, it replicaItem) Evidence {
	name := md.replicaNames.names[ri]
	st := &md.replicas[ri]
	msg := uint32(it.key >> 32)
	m := &md.msgs[msg]
	if it.missing {
		f := &md.finals[it.fin]
		return Evidence{Problem: "replica-missing", MsgID: md.msgIDs.name(msg), Mailbox: md.mboxes.names[md.finalMbox(f)],
			Detail: fmt.Sprintf("replica %s has no copy (its read %d completed at line %d); final read round %d found it at UID %d (line %d); %s",
				name, st.done, st.doneLine, md.lastRound, md.finalUID(f), f.line, md.sendFacts(m))}
	}
	r := &md.replicaRecs[it.rec]
	return Evidence{Problem: "replica-corrupted", MsgID: md.msgIDs.name(msg), Mailbox: md.replicaMboxes.names[r.mbox], UID: r.uid,
		Detail: fmt.Sprintf("replica %s holds a copy at UID %d (line %d) whose body hash differs from the one sent; %s", name, r.uid, r.line, md.sendFacts(m))}
}
