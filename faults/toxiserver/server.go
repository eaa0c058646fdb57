// Package toxiserver is Toxiproxy's server (upstream cmd/server of
// github.com/Shopify/toxiproxy/v2: same flags, same API) with mailchaos's
// own toxics registered: "smtp_data_cut" (faults/smtptoxic), which cuts an
// SMTP connection at the end of DATA.
//
// Two programs run it: faults/cmd/toxiproxy, a standalone server, and the
// mailchaos binary itself, which serves as Toxiproxy when started under the
// name "toxiproxy" (or as `mailchaos toxiproxy`). The reference stack's
// toxiproxy image is a copy of the mailchaos binary, so an installed
// mailchaos builds it without a checkout or a Go toolchain.
//
// It is the server only: the harness talks to it with Toxiproxy's client.
package toxiserver

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/Shopify/toxiproxy/v2/toxics"

	// Our toxics register themselves.
	_ "github.com/mailchaos/mailchaos/faults/smtptoxic"
)

// upstreamModule is the module whose version the server reports.
const upstreamModule = "github.com/Shopify/toxiproxy/v2"

type cliArguments struct {
	host           string
	port           string
	config         string
	seed           int64
	printVersion   bool
	proxyMetrics   bool
	runtimeMetrics bool
}

func parseArguments(args []string, output io.Writer) (cliArguments, error) {
	result := cliArguments{}
	fs := flag.NewFlagSet("toxiproxy", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&result.host, "host", "localhost", "Host for toxiproxy's API to listen on")
	fs.StringVar(&result.port, "port", "8474", "Port for toxiproxy's API to listen on")
	fs.StringVar(&result.config, "config", "", "JSON file containing proxies to create on startup")
	fs.Int64Var(&result.seed, "seed", time.Now().UTC().UnixNano(), "Seed for randomizing toxics with")
	fs.BoolVar(&result.runtimeMetrics, "runtime-metrics", false, `enable runtime-related prometheus metrics (default "false")`)
	fs.BoolVar(&result.proxyMetrics, "proxy-metrics", false, `enable toxiproxy-specific prometheus metrics (default "false")`)
	fs.BoolVar(&result.printVersion, "version", false, `print the version (default "false")`)
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return result, err
}

// Version is the Toxiproxy release the server is built from: the version
// the linker set (-X github.com/Shopify/toxiproxy/v2.Version=...), or else
// the version of the upstream module linked into the binary.
func Version() string {
	if toxiproxy.Version != "git" {
		return toxiproxy.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == upstreamModule {
				if m.Replace != nil {
					m = m.Replace
				}
				return strings.TrimPrefix(m.Version, "v")
			}
		}
	}
	return toxiproxy.Version
}

// Run serves the API, with Toxiproxy's flags in args, until ctx is done;
// -version prints the version to stdout and returns. The log goes to
// stdout, as upstream's does.
func Run(ctx context.Context, args []string, stdout io.Writer) error {
	cli, err := parseArguments(args, stdout)
	if err != nil {
		return err
	}
	// The API's /version answers with the package variable.
	toxiproxy.Version = Version()
	if cli.printVersion {
		fmt.Fprintf(stdout, "toxiproxy-server version %s (mailchaos toxics: %d registered)\n", toxiproxy.Version, toxics.Count())
		return nil
	}

	// Upstream seeds the global source the toxicity draws use.
	rand.Seed(cli.seed) //nolint:staticcheck // the toxics package draws from the global source

	logger := setupLogger(stdout)
	log.Logger = logger
	logger.Info().Str("version", toxiproxy.Version).Int("toxics", toxics.Count()).Msg("Starting Toxiproxy (mailchaos build)")

	metrics := toxiproxy.NewMetricsContainer(prometheus.NewRegistry())
	server := toxiproxy.NewServer(metrics, logger)
	if cli.proxyMetrics {
		server.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	}
	if cli.runtimeMetrics {
		server.Metrics.RuntimeMetrics = collectors.NewRuntimeMetricCollectors()
	}
	if len(cli.config) > 0 {
		server.PopulateConfig(cli.config)
	}

	addr := net.JoinHostPort(cli.host, cli.port)
	go func() {
		if err := server.Listen(addr); err != nil {
			server.Logger.Err(err).Msg("Server finished with error")
		}
	}()

	<-ctx.Done()
	server.Logger.Info().Msg("Shutdown started")
	if err := server.Shutdown(); err != nil {
		logger.Err(err).Msg("Shutdown finished with error")
	}
	return nil
}

func setupLogger(w io.Writer) zerolog.Logger {
	zerolog.TimestampFunc = func() time.Time { return time.Now().UTC() }
	zerolog.CallerMarshalFunc = func(pc uintptr, file string, line int) string {
		short := file
		for i := len(file) - 1; i > 0; i-- {
			if file[i] == '/' {
				short = file[i+1:]
				break
			}
		}
		return short + ":" + strconv.Itoa(line)
	}
	logger := zerolog.New(w).With().Caller().Timestamp().Logger()
	val, ok := os.LookupEnv("LOG_LEVEL")
	if !ok {
		return logger
	}
	lvl, err := zerolog.ParseLevel(val)
	if err == nil {
		logger = logger.Level(lvl)
	} else {
		logger.Err(err).Msgf("unknown LOG_LEVEL value: \"%s\"", val)
	}
	return logger
}
