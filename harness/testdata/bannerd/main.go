// Command bannerd is the harness tests' stand-in for a mail server: a static
// binary in a FROM scratch image (mailchaos/harness-test:dev).
//
//	bannerd serve "25=220 front ready" "143=* OK ready"   greet on each port, then echo (and log) lines
//	bannerd say TEXT CODE                                   print TEXT, exit CODE
//	bannerd cat FILE                                        print FILE
//	bannerd dial HOST:PORT [LINE...]                        connect (2 s), send each LINE + CRLF, print the
//	                                                        first line back; exit 1 if it cannot connect
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bannerd serve|say|cat|dial ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "say":
		fmt.Println(os.Args[2])
		code, _ := strconv.Atoi(os.Args[3])
		os.Exit(code)
	case "cat":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "dial":
		os.Exit(dial(os.Args[2], os.Args[3:]))
	case "serve":
		for _, spec := range os.Args[2:] {
			port, banner, _ := strings.Cut(spec, "=")
			l, err := net.Listen("tcp", ":"+port)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println("listening on", port)
			go serve(l, banner)
		}
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		fmt.Println("stopping on", <-ch)
	}
}

func serve(l net.Listener, banner string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%s\r\n", banner)
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				// Logged as a server's protocol trace would: the harness
				// must redact what it saves.
				fmt.Printf("got %s\n", sc.Text())
				fmt.Fprintf(c, "echo %s\r\n", sc.Text())
			}
		}()
	}
}

// dial connects to addr, sends lines, and prints the first line of the
// reply: a service container's view of what it can reach.
func dial(addr string, lines []string) int {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	for _, l := range lines {
		fmt.Fprintf(c, "%s\r\n", l)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	fmt.Println(strings.TrimSpace(line), err)
	return 0
}
