// Command bannerd is the harness tests' stand-in for a mail server: a static
// binary in a FROM scratch image (mailchaos/harness-test:dev).
//
//	bannerd serve "25=220 front ready" "143=* OK ready"   greet on each port, then echo lines
//	bannerd say TEXT CODE                                   print TEXT, exit CODE
//	bannerd cat FILE                                        print FILE
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
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bannerd serve|say|cat ...")
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
				fmt.Fprintf(c, "echo %s\r\n", sc.Text())
			}
		}()
	}
}
