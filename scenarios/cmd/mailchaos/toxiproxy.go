package main

import (
	"context"
	"os"

	"github.com/mailchaos/mailchaos/faults/toxiserver"
)

// toxiproxyCommand is the hidden subcommand that serves Toxiproxy, and the
// name under which the binary serves it without one.
const toxiproxyCommand = "toxiproxy"

func init() {
	// Hidden: users do not run it; the reference stack's toxiproxy image is
	// a copy of this binary named /toxiproxy (images.yaml, kind self), so
	// an installed mailchaos builds that image with no checkout and no Go
	// toolchain.
	registerHidden(toxiproxyCommand, "serve Toxiproxy's API with mailchaos's toxics (what the toxiproxy image runs)", toxiproxyCmd)
}

func toxiproxyCmd(ctx context.Context, args []string) error {
	return toxiserver.Run(ctx, args, os.Stdout)
}
