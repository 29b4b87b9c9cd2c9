package replicate

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReplicaDDL(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		{"engine and counter", "CREATE TABLE `a` (\n  `x` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`x`)\n) ENGINE=MyISAM AUTO_INCREMENT=280583 DEFAULT CHARSET=utf8mb3",
			"CREATE TABLE `a` (\n  `x` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`x`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3"},
		{"myisam options", "CREATE TABLE `a` (\n  `x` int(11) NOT NULL\n) ENGINE=MyISAM DEFAULT CHARSET=latin1 ROW_FORMAT=FIXED PACK_KEYS=1 CHECKSUM=1 DELAY_KEY_WRITE=1",
			"CREATE TABLE `a` (\n  `x` int(11) NOT NULL\n) ENGINE=InnoDB DEFAULT CHARSET=latin1"},
		{"column named like an option kept", "CREATE TABLE `a` (\n  `CHECKSUM` int(11) NOT NULL DEFAULT 0\n) ENGINE=MyISAM",
			"CREATE TABLE `a` (\n  `CHECKSUM` int(11) NOT NULL DEFAULT 0\n) ENGINE=InnoDB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { assert.Equal(t, c.want, replicaDDL(c.in)) })
	}
}

func TestSplitIndexes(t *testing.T) {
	t.Parallel()
	in := "CREATE TABLE `a` (\n  `x` int(11) NOT NULL,\n  `y` text,\n  PRIMARY KEY (`x`),\n  UNIQUE KEY `u` (`y`(10)),\n  KEY `k` (`y`(5)),\n  FULLTEXT KEY `f` (`y`)\n) ENGINE=InnoDB"
	out, cut := splitIndexes(in)
	assert.Equal(t, "CREATE TABLE `a` (\n  `x` int(11) NOT NULL,\n  `y` text,\n  PRIMARY KEY (`x`),\n  UNIQUE KEY `u` (`y`(10))\n) ENGINE=InnoDB", out)
	assert.Equal(t, []string{"KEY `k` (`y`(5))", "FULLTEXT KEY `f` (`y`)"}, cut)
	assert.Equal(t, map[string]string{"u": "UNIQUE KEY `u` (`y`(10))", "k": "KEY `k` (`y`(5))", "f": "FULLTEXT KEY `f` (`y`)"}, indexDefs(in))
}

// Indexes are compared by name and definition: a changed one is dropped
// and added again; stale ones are dropped first, missing ones added only
// when asked (after the copy).
func TestIndexClauses(t *testing.T) {
	t.Parallel()
	rep := "CREATE TABLE `a` (\n  `x` int(11) NOT NULL,\n  `y` text,\n  PRIMARY KEY (`x`),\n  UNIQUE KEY `U` (`y`(10)),\n  KEY `k` (`y`(5)),\n  KEY `gone` (`x`,`y`(3))\n) ENGINE=InnoDB"
	src := "CREATE TABLE `a` (\n  `x` int(11) NOT NULL,\n  `y` text,\n  PRIMARY KEY (`x`),\n  KEY `k` (`y`(6)),\n  UNIQUE KEY `new``u` (`x`,`y`(4))\n) ENGINE=MyISAM"
	clauses, changes := indexClauses("a", src, rep, false)
	assert.Equal(t, []string{"DROP INDEX `gone`", "DROP INDEX `k`", "DROP INDEX `U`"}, clauses)
	assert.Len(t, changes, 3)
	clauses, changes = indexClauses("a", src, rep, true)
	assert.Equal(t, []string{"DROP INDEX `gone`", "DROP INDEX `k`", "DROP INDEX `U`", "ADD KEY `k` (`y`(6))", "ADD UNIQUE KEY `new``u` (`x`,`y`(4))"}, clauses)
	assert.Equal(t, "a: added index new`u UNIQUE KEY `new``u` (`x`,`y`(4))", changes[4].String())
	clauses, changes = indexClauses("a", src, src, true)
	assert.Empty(t, clauses)
	assert.Empty(t, changes)
}

func TestKeysetPredicates(t *testing.T) {
	t.Parallel()
	q, args := after([]string{"a"}, []any{1})
	assert.Equal(t, "(`a` >= ? AND `a` > ?)", q)
	assert.Equal(t, []any{1, 1}, args)
	q, args = after([]string{"w", "a", "b"}, []any{"t", 1, 2})
	assert.Equal(t, "(`w` >= ? AND (`w` > ? OR (`w` = ? AND (`a` > ? OR (`a` = ? AND `b` > ?)))))", q)
	assert.Equal(t, []any{"t", "t", "t", 1, 1, 2}, args)
	q, args = between([]string{"a", "b"}, []any{1, 2}, []any{3, 4})
	assert.Equal(t, "(`a`,`b`) >= (?,?) AND (`a`,`b`) <= (?,?)", q)
	assert.Equal(t, []any{1, 2, 3, 4}, args)
	assert.Equal(t, int64(42), param("42", "bigint"))
	assert.Equal(t, uint64(18446744073709551615), param("18446744073709551615", "bigint"))
	assert.Equal(t, "2024-01-01", param("2024-01-01", "date"))
	assert.Equal(t, "2024-05-01 09:59:30", lookback("2024-05-01 10:00:00", "timestamp", 30))
	assert.Equal(t, "0000-00-00 00:00:00", lookback("0000-00-00 00:00:00", "timestamp", 30))
	assert.Equal(t, "77", lookback("77", "bigint", 30))
}

func TestLookback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, wm, dataType string
		secs               int
		want               string
	}{
		{"timestamp", "2024-05-01 10:00:00", "timestamp", 90, "2024-05-01 09:58:30"},
		{"fraction dropped, so earlier", "2024-05-01 10:00:00.250000", "timestamp", 60, "2024-05-01 09:59:00"},
		{"across midnight", "2024-05-01 00:00:10", "datetime", 20, "2024-04-30 23:59:50"},
		{"date", "2024-05-01", "date", 86400, "2024-04-30"},
		{"no lookback", "2024-05-01 10:00:00.250000", "timestamp", 0, "2024-05-01 10:00:00.250000"},
		{"zero date kept", "0000-00-00 00:00:00", "datetime", 60, "0000-00-00 00:00:00"},
		{"integer watermark kept", "12345", "bigint", 60, "12345"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { assert.Equal(t, c.want, lookback(c.wm, c.dataType, c.secs)) })
	}
}
