// Package faults turns what mail platforms fear (partitions, region loss,
// crashes, rolling upgrades, failovers, a connection cut right after the
// final "." of DATA) into values a scenario can schedule.
//
// A Fault has a name (its kind), a target, Inject and Heal. Kinds are
// registered by name so a flag can name a fault: "region-loss:a",
// "latency:wan-a-b:200ms:jitter=50ms". A Timeline runs faults at offsets,
// in series or overlapping, records every inject and heal to an EventSink
// with the call time and the time its effect was observed, and heals every
// fault at the end, on cancel and on panic. A Nemesis plans a random but
// seeded timeline from a menu of fault specs.
//
// The package does not import the harness: it declares the small interfaces
// it needs (Env, Node, Region, Link, Edge) and faults/harnessenv adapts a
// *harness.Env to them. It does not generate load or judge results.
package faults
