package harness_test

import (
	"fmt"

	"github.com/mailchaos/mailchaos/harness"
)

// A descriptor with mistakes yields one error that lists all of them.
func ExampleParse() {
	_, err := harness.Parse("stack.yaml", []byte(`version: 1
services:
  store-a:
    image: mailchaos/store:v1
    role: stor
    depends_on: [mta-a]
    stop_timeout: 10 seconds
`))
	fmt.Println(err)
	// Output:
	// stack.yaml: 3 problems in the stack descriptor:
	// stack.yaml:5: service "store-a": unknown role "stor" (did you mean "store"?); known roles: edge, mta, store, standby (or x-<name> for a custom role)
	// stack.yaml:6: service "store-a": depends_on names unknown service "mta-a": services are store-a
	// stack.yaml:7: service "store-a": stop_timeout: "10 seconds" is not a duration: write it like 10s, 500ms or 1m30s
}
