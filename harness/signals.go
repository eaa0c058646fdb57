package harness

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

var signalOnce sync.Once

// installSignalHandler makes SIGINT and SIGTERM tear down every live Env and
// then exit with code 130. It is installed by the first Up of the process.
// Panics are not signals: callers cover them with a deferred Teardown (see Up).
func installSignalHandler() {
	signalOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			envs := liveEnvs()
			fmt.Fprintf(os.Stderr, "mailchaos: %v: tearing down %d stack(s); interrupt again to exit at once\n", sig, len(envs))
			go func() {
				<-ch
				os.Exit(130)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			for _, e := range envs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := e.Teardown(ctx); err != nil {
						fmt.Fprintf(os.Stderr, "mailchaos: teardown %s: %v\n", e.RunID(), err)
					}
				}()
			}
			wg.Wait()
			os.Exit(130)
		}()
	})
}
