package serverid

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// ErrReplicaIsSource marks a configuration whose replica database is the
// source database.
var ErrReplicaIsSource = errors.New("the replica database is the source database")

// CheckReplica refuses a replica database that is the source database, on
// the same server however each is addressed. Every command that writes the
// replica calls it before it writes or locks anything. The error wraps
// providers.ErrInvalidConfig (exit 2) and ErrReplicaIsSource and names both
// variables and the fix.
func CheckReplica(ctx context.Context, s *providers.Settings, source, replica *sql.DB) error {
	src, err := Read(ctx, source)
	if err != nil {
		return fmt.Errorf("identify the source server: %w", err)
	}
	repl, err := Read(ctx, replica)
	if err != nil {
		return fmt.Errorf("identify the replica server: %w", err)
	}
	if !src.SameDatabase(repl) {
		return nil
	}
	srcVar, srcAddr := describe(s, catalog.DatabaseSource)
	replVar, replAddr := describe(s, catalog.DatabaseReplication)
	return fmt.Errorf("%w: %w: %s=%q%s and %s=%q%s reach the same database on the same %s; "+
		"replicating would write into the source. Set %s to a separate database (create an empty one, e.g. %s_replica). Nothing was written",
		providers.ErrInvalidConfig, ErrReplicaIsSource,
		replVar, repl.Database, replAddr, srcVar, src.Database, srcAddr, src.Server(), replVar, src.Database)
}

// describe names db's DB variable and the address it was given, for the
// message.
func describe(s *providers.Settings, db catalog.DatabaseType) (variable, addr string) {
	d, _ := catalog.Lookup(db)
	variable = s.Environment.VarPrefix() + d.EnvPrefix + "_DB"
	if cfg, err := s.DatabaseConfig(s.Environment, db, ""); err == nil {
		addr = " at " + cfg.Addr()
	}
	return variable, addr
}
