// Package harness brings a mail stack described by a YAML descriptor
// (stack.yaml) up in Docker containers, hands out handles to break it, and
// removes everything again.
//
// A descriptor lists services (image, region, role, ports, readiness probe,
// volumes, files rendered per run) and links: Toxiproxy proxies through
// which every fault-able path passes. Load validates the whole file and
// reports every problem at once, each with its line and a fix. The JSON
// Schema of the format is schema/stack.schema.json.
//
// Up creates, for one run id, a network per region plus "core", named
// volumes, one Toxiproxy container joined to every network (alias
// "toxiproxy") and to a control network of its own, where alone its API
// listens (see ProxyAPIHost: no service can reach the API), then the
// services in depends_on order, each published on 127.0.0.1 with host
// ports picked once per run, and waits until each is ready. The Env it returns gives endpoints ("127.0.0.1:port"), Node,
// Region, Link and Edge handles for faults, and Teardown. Everything created
// carries the label mailchaos.run=<run id> and its owner (host, pid and
// start time of the process): Teardown removes what its process made under
// that id, Up refuses an id that already has resources, and Clean removes
// the runs whose owner process is gone (or one run, or, forced, any).
//
// Callers always defer Teardown right after Up, before checking the error:
//
//	env, err := harness.Up(ctx, d, harness.Options{OutDir: "out/run1"})
//	defer env.Teardown(context.Background()) // nil-safe and idempotent
//	if err != nil {
//		return err
//	}
//
// The deferred call also runs when the calling goroutine panics (a panic in
// another goroutine ends the process without running defers; Clean removes
// what is left). SIGINT and SIGTERM tear down every live Env of the process
// and exit with code 130, unless the program calls DeferInterrupts to stop
// in order itself on the first signal (the scenario suite does): then only
// a second signal removes every live Env at once and exits 130.
//
// The package knows nothing of Postfix, Dovecot or HAProxy: those live in
// fixtures/. It never pulls an image: a missing image, or an unreachable
// Docker engine, fails Up before anything is created, with one line that
// says the cause and the fix. It does not generate load or judge results.
package harness
