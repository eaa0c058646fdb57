// Command toxiproxy is Toxiproxy's server with mailchaos's own toxics
// registered (see faults/toxiserver), as a program of its own. The mailchaos
// binary serves the same when started as "toxiproxy"; the reference stack's
// image is built from that (see fixtures/stacks/reference/images.yaml).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mailchaos/mailchaos/faults/toxiserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := toxiserver.Run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Printf("error: %v", err)
		os.Exit(1)
	}
}
