// Package gen holds code generated from schemas.yaml by tools/gen-connections:
// gen/catalog (typed enums and database descriptors) and gen/connections
// (handle types, Prod/Test constructors and config getters, fx modules).
// To add a database or a schema, edit schemas.yaml and run `go generate ./...`;
// never edit the generated files.
package gen

//go:generate go run ../tools/gen-connections -config ../schemas.yaml -out .
