package providers

import "github.com/opendental-pipeline/pipeline/gen/catalog"

// DatabaseVariables lists the environment variables db reads in env, in
// specification order (HOST, PORT, DB, USER, PASSWORD, SSL_MODE, SSL_CA,
// SSL_CERT, SSL_KEY and, for a database with schemas, SCHEMA). Only the tests need the list as names.
func DatabaseVariables(env Environment, db catalog.Database) []string {
	var out []string
	for _, v := range databaseVars(env, db) {
		out = append(out, v.Key)
	}
	return out
}
