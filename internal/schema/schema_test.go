package schema_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// counting counts the queries sent through it.
type counting struct {
	db *sql.DB
	n  int
}

func (c *counting) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.n++
	return c.db.QueryContext(ctx, q, args...)
}

func TestReadDescribesTablesColumnsKeysAndIndexes(t *testing.T) {
	t.Parallel()
	db, _ := testdb.MySQL(t, "schema")
	for _, q := range []string{
		"CREATE TABLE pairs (Grp INT NOT NULL, Code VARCHAR(10) CHARACTER SET latin1 NOT NULL, Amount DECIMAL(12,3) UNSIGNED NULL," +
			" Flags BIT(10) NULL, Note TEXT NULL, Stamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP," +
			" PRIMARY KEY (Grp, Code), UNIQUE KEY u_note (Note(20)), KEY k_stamp (Stamp, Grp)) ENGINE=MyISAM",
		"CREATE TABLE nokey (A INT NULL) ENGINE=InnoDB",
		"CREATE VIEW v AS SELECT A FROM nokey",
		"INSERT INTO pairs (Grp, Code) VALUES (1, 'a'), (2, 'b')",
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	var serverNow string
	require.NoError(t, db.QueryRow("SELECT UTC_TIMESTAMP()").Scan(&serverNow))

	c := &counting{db: db}
	got, err := schema.Read(context.Background(), c)
	require.NoError(t, err)
	assert.Equal(t, 3, c.n, "three queries for the whole database")
	require.Len(t, got.Tables, 2, "base tables only, the view left out")
	now, err := time.Parse(schema.TimeLayout, serverNow)
	require.NoError(t, err)
	assert.WithinDuration(t, now, got.Now, 5*time.Second, "the server's UTC clock")

	p := got.Tables["pairs"]
	require.NotNil(t, p)
	assert.Equal(t, []string{"Grp", "Code"}, p.PrimaryKey)
	assert.Equal(t, []string{"Grp", "Code", "Amount", "Flags", "Note", "Stamp"}, p.ColumnNames())
	assert.Equal(t, "MyISAM", p.Engine)
	assert.Equal(t, int64(2), p.Rows, "MyISAM counts exactly")
	assert.NotEmpty(t, p.UpdateTime, "MyISAM knows its last change")
	assert.Equal(t, []schema.Index{
		{Name: "k_stamp", Columns: []string{"Stamp", "Grp"}, Kind: "BTREE", Prefix: []int64{0, 0}},
		{Name: "PRIMARY", Unique: true, Columns: []string{"Grp", "Code"}, Kind: "BTREE", Prefix: []int64{0, 0}},
		{Name: "u_note", Unique: true, Columns: []string{"Note"}, Kind: "BTREE", Prefix: []int64{20}},
	}, p.Indexes, "by name as the server sorts them")
	assert.Equal(t, schema.Column{Name: "Code", Type: "varchar(10)", DataType: "varchar", Charset: "latin1", MaxLength: 10}, *p.Column("code"))
	amount := p.Column("Amount")
	assert.Equal(t, schema.Column{Name: "Amount", Type: "decimal(12,3) unsigned", DataType: "decimal", Nullable: true, Precision: 12, Scale: 3}, *amount)
	assert.True(t, amount.Unsigned())
	assert.Equal(t, int64(10), p.Column("Flags").Precision, "bit width")
	assert.Contains(t, p.Column("Stamp").Extra, "on update")
	assert.False(t, p.KeyTravels(), "a latin1 key cannot be sent back as a UTF-8 argument")
	assert.Nil(t, p.Column("missing"))

	n := got.Tables["nokey"]
	require.NotNil(t, n)
	assert.Nil(t, n.PrimaryKey)
	assert.Empty(t, n.UpdateTime, "InnoDB does not say (after a restart)")
	assert.True(t, n.KeyTravels(), "no key: nothing to send back")
}

func TestReadIsConstantInTheNumberOfTables(t *testing.T) {
	t.Parallel()
	db, _ := testdb.MySQL(t, "schema")
	for i := range 25 {
		_, err := db.Exec(fmt.Sprintf("CREATE TABLE t%d (Id INT PRIMARY KEY, V INT)", i))
		require.NoError(t, err)
	}
	c := &counting{db: db}
	got, err := schema.Read(context.Background(), c)
	require.NoError(t, err)
	assert.Len(t, got.Tables, 25)
	assert.Equal(t, 3, c.n)
}

func TestReadTable(t *testing.T) {
	t.Parallel()
	db, _ := testdb.MySQL(t, "schema")
	for _, q := range []string{"CREATE TABLE a (Id INT PRIMARY KEY, V INT)", "CREATE TABLE `b c` (K VARCHAR(5) PRIMARY KEY)"} {
		_, err := db.Exec(q)
		require.NoError(t, err)
	}
	got, err := schema.ReadTable(context.Background(), db, "b c")
	require.NoError(t, err)
	assert.Equal(t, "b c", got.Name)
	assert.Equal(t, []string{"K"}, got.PrimaryKey)
	assert.Equal(t, []string{"K"}, got.ColumnNames(), "only that table's columns")

	_, err = schema.ReadTable(context.Background(), db, "missing")
	assert.ErrorIs(t, err, schema.ErrNoTable)
	assert.ErrorContains(t, err, "missing")

	// An empty database still tells the server's clock.
	empty, _ := testdb.MySQL(t, "schema")
	d, err := schema.Read(context.Background(), empty)
	require.NoError(t, err)
	assert.Empty(t, d.Tables)
	assert.False(t, d.Now.IsZero())
}
