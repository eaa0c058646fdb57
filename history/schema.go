package history

import _ "embed" // the schema

// Schema is the JSON Schema (draft 2020-12) of one history line, version
// SchemaVersion: the published form of Record and Validate.
//
//go:embed history.schema.json
var Schema []byte
