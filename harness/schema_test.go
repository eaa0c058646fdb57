package harness

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

const schemaPath = "schema/stack.schema.json"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaPath, err)
	}
	return sch
}

// yamlAsJSON decodes a YAML file into the values a JSON decoder would give.
func yamlAsJSON(t *testing.T, path string) any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s as JSON: %v", path, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestSchemaAcceptsDescriptors validates the reference stack, the
// exim-cyrus stack and the test fixtures against the published JSON Schema.
func TestSchemaAcceptsDescriptors(t *testing.T) {
	sch := compileSchema(t)
	// Every stack variant under fixtures/stacks/defects and
	// fixtures/stacks/doctor is an overlay of the reference.
	variants, _ := filepath.Glob("../fixtures/stacks/defects/*/stack.yaml")
	doctorVariants, _ := filepath.Glob("../fixtures/stacks/doctor/*/stack.yaml")
	variants = append(variants, doctorVariants...)
	for _, path := range append([]string{referenceStack, eximCyrusStack, "testdata/toy/stack.yaml", "testdata/overlay/stack.yaml"}, variants...) {
		t.Run(path, func(t *testing.T) {
			if _, err := os.Stat(path); os.IsNotExist(err) {
				t.Skipf("%s not there yet", path)
			}
			if err := sch.Validate(yamlAsJSON(t, path)); err != nil {
				t.Errorf("%s does not match the schema:\n%v", path, err)
			}
		})
	}
}

// TestSchemaRejectsBroken checks the schema catches the mistakes it can see.
func TestSchemaRejectsBroken(t *testing.T) {
	sch := compileSchema(t)
	err := sch.Validate(yamlAsJSON(t, "testdata/broken.yaml"))
	if err == nil {
		t.Fatal("broken.yaml matches the schema")
	}
	for _, want := range []string{"imgae", "stor", "10 seconds", "soon"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("schema error does not mention %q:\n%v", want, err)
		}
	}
}

// TestSchemaCoversEveryKey keeps the schema and the Go types in step: every
// yaml key of the descriptor types is a property in the schema.
func TestSchemaCoversEveryKey(t *testing.T) {
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	defs := raw["$defs"].(map[string]any)
	props := func(obj map[string]any) map[string]any { return obj["properties"].(map[string]any) }
	service := props(defs["service"].(map[string]any))
	objects := map[reflect.Type]map[string]any{
		reflect.TypeOf(Descriptor{}):  props(raw),
		reflect.TypeOf(UsersSpec{}):   props(props(raw)["users"].(map[string]any)),
		reflect.TypeOf(TLSSpec{}):     props(props(raw)["tls"].(map[string]any)),
		reflect.TypeOf(ProxySpec{}):   props(props(raw)["proxy"].(map[string]any)),
		reflect.TypeOf(LinkSpec{}):    props(defs["link"].(map[string]any)),
		reflect.TypeOf(ServiceSpec{}): service,
		reflect.TypeOf(ReadySpec{}):   props(service["ready"].(map[string]any)),
		reflect.TypeOf(FileSpec{}):    props(defs["file"].(map[string]any)),
		reflect.TypeOf(Edit{}):        props(props(defs["file"].(map[string]any))["edits"].(map[string]any)["items"].(map[string]any)),
		reflect.TypeOf(ControlSpec{}): props(service["control"].(map[string]any)),
	}
	for typ, p := range objects {
		n := 0
		for i := 0; i < typ.NumField(); i++ {
			tag := strings.Split(typ.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			n++
			if _, ok := p[tag]; !ok {
				t.Errorf("schema lacks %s.%s", typ.Name(), tag)
			}
		}
		if n != len(p) {
			t.Errorf("%s has %d yaml keys, the schema %d properties", typ.Name(), n, len(p))
		}
	}
}
