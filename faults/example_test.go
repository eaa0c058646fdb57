package faults_test

import (
	"fmt"
	"time"

	"github.com/mailchaos/mailchaos/faults"
)

func ExampleParseSpec() {
	s, err := faults.ParseSpec("latency:wan-a-b:200ms:jitter=50ms")
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Kind.Name, s.Target, s.Values.Duration("latency"), s.Values.Duration("jitter"), s.Values.String("stream"))
	_, err = faults.ParseSpec("latency:wan-a-b:fast")
	fmt.Println(err)
	// Output:
	// latency wan-a-b 200ms 50ms both
	// fault "latency:wan-a-b:fast": latency: "fast" is not a duration (e.g. 200ms, 2s); usage: latency:<link>[:latency=200ms][:jitter=0s][:stream=both][:toxicity=1]
}

func ExampleSchedule() {
	steps := []faults.Step{
		{At: time.Second, For: 10 * time.Second, Spec: "partition:wan-a-b"},
		{At: 5 * time.Second, Spec: "region-loss:b"},
	}
	fmt.Print(faults.Schedule(steps))
	// Output:
	// 0 +1s for 10s partition:wan-a-b
	// 1 +5s until end region-loss:b
}
