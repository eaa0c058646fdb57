package check

// seal derives, once the history has been read, the facts that several
// checks share: the complete final-read rounds, each delivery's copies in
// the first and the last of them (and the corrupted ones), the copies
// without an X-Mailchaos-Id, the deliveries a client expunged and the
// sending side's tally. After seal the checks only read the model.
func (md *model) seal() {
	md.firstRound, md.lastRound = md.completeRounds()
	md.resolvePendingHashes()
	if md.lastRound > 0 {
		md.countCopies()
	}
	md.markExpunged()
	md.sends = md.countSends()
}

// sendTally counts the messages named by a send record, by outcome.
type sendTally struct {
	messages, accepted, indeterminate, failed int64
}

// completeRounds returns the first and last complete final-read rounds
// (0, 0 if none).
func (md *model) completeRounds() (first, last int) {
	for r := range md.rounds {
		if first == 0 || r < first {
			first = r
		}
		last = max(last, r)
	}
	return first, last
}

// resolvePendingHashes judges the final records whose message's sent hash
// was not known when they were read.
func (md *model) resolvePendingHashes() {
	for i, h := range md.finalHashes {
		f := &md.finals[i]
		if m := &md.msgs[f.msg]; m.hashKnown() && h != m.hash {
			f.bits |= fCorrupt
		}
	}
}

// countCopies counts each delivery's copies in the first and last
// complete rounds, and the corrupted ones in the last; it keeps the last
// round's copies without an X-Mailchaos-Id apart (md.foreign).
func (md *model) countCopies() {
	first, last := md.firstRound, md.lastRound
	for i := range md.finals {
		f := &md.finals[i]
		if int(f.round) != first && int(f.round) != last {
			continue
		}
		if f.msg == none {
			if int(f.round) == last {
				md.foreign = append(md.foreign, *f)
				md.finalCopies++
			}
			continue
		}
		d := md.deliv(f.msg, md.mboxUser[md.finalMbox(f)])
		if int(f.round) == first {
			d.copiesFirst = sat16(d.copiesFirst)
		}
		if int(f.round) == last {
			md.finalCopies++
			d.copiesLast = sat16(d.copiesLast)
			if f.bits&fCorrupt != 0 {
				d.corruptLast = sat16(d.corruptLast)
			}
		}
	}
}

// markExpunged marks the deliveries a client expunged: their absence is
// legitimate.
func (md *model) markExpunged() {
	for _, a := range md.actions {
		if !a.expunge {
			continue
		}
		if msg := md.resolve(a); msg != none {
			md.deliv(msg, md.mboxUser[a.mbox]).expunged = true
		}
	}
}

// countSends counts the sending side per message.
func (md *model) countSends() sendTally {
	var t sendTally
	for i := range md.msgs {
		m := &md.msgs[i]
		if !m.sent() {
			continue
		}
		t.messages++
		switch {
		case m.accepted():
			t.accepted++
		case m.indeterminate():
			t.indeterminate++
		default:
			t.failed++
		}
	}
	return t
}
