// Command toxiproxy is Toxiproxy's server (upstream cmd/server of
// github.com/Shopify/toxiproxy/v2, same flags and API) with mailchaos's own
// toxics registered: "smtp_data_cut" (faults/smtptoxic), which cuts an SMTP
// connection at the end of DATA. The reference stack's toxiproxy image is
// built from this package.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
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

type cliArguments struct {
	host           string
	port           string
	config         string
	seed           int64
	printVersion   bool
	proxyMetrics   bool
	runtimeMetrics bool
}

func parseArguments(args []string) (cliArguments, error) {
	result := cliArguments{}
	fs := flag.NewFlagSet("toxiproxy", flag.ContinueOnError)
	fs.StringVar(&result.host, "host", "localhost", "Host for toxiproxy's API to listen on")
	fs.StringVar(&result.port, "port", "8474", "Port for toxiproxy's API to listen on")
	fs.StringVar(&result.config, "config", "", "JSON file containing proxies to create on startup")
	fs.Int64Var(&result.seed, "seed", time.Now().UTC().UnixNano(), "Seed for randomizing toxics with")
	fs.BoolVar(&result.runtimeMetrics, "runtime-metrics", false, `enable runtime-related prometheus metrics (default "false")`)
	fs.BoolVar(&result.proxyMetrics, "proxy-metrics", false, `enable toxiproxy-specific prometheus metrics (default "false")`)
	fs.BoolVar(&result.printVersion, "version", false, `print the version (default "false")`)
	err := fs.Parse(args)
	return result, err
}

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	if err := run(os.Args[1:], signals); err != nil {
		fmt.Printf("error: %v", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// run serves the API until stop receives; it is main without the process
// exit, so a test can run the server in-process.
func run(args []string, stop <-chan os.Signal) error {
	cli, err := parseArguments(args)
	if err != nil {
		return err
	}
	if cli.printVersion {
		fmt.Printf("toxiproxy-server version %s (mailchaos toxics: %d registered)\n", toxiproxy.Version, toxics.Count())
		return nil
	}

	// Upstream seeds the global source the toxicity draws use.
	rand.Seed(cli.seed) //nolint:staticcheck // the toxics package draws from the global source

	logger := setupLogger()
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

	<-stop
	server.Logger.Info().Msg("Shutdown started")
	if err := server.Shutdown(); err != nil {
		logger.Err(err).Msg("Shutdown finished with error")
	}
	return nil
}

func setupLogger() zerolog.Logger {
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
	logger := zerolog.New(os.Stdout).With().Caller().Timestamp().Logger()
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
