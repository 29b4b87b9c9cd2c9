package replicate

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A system-versioned source table becomes a plain replica table: the
// versioning clauses go, explicit period columns stay as plain columns.
func TestUnversioned(t *testing.T) {
	plain := "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4"
	assert.Equal(t, plain, unversioned(plain), "a table without versioning is unchanged")

	assert.Equal(t, "CREATE TABLE `sv` (\n  `id` int(11) NOT NULL,\n  `x` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
		unversioned("CREATE TABLE `sv` (\n  `id` int(11) NOT NULL,\n  `x` int(11) DEFAULT NULL WITHOUT SYSTEM VERSIONING,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci WITH SYSTEM VERSIONING"))

	assert.Equal(t, "CREATE TABLE `sv2` (\n  `id` int(11) NOT NULL,\n  `rs` timestamp(6) NOT NULL DEFAULT 0 INVISIBLE,\n  `re` timestamp(6) NOT NULL DEFAULT 0 INVISIBLE,\n  PRIMARY KEY (`id`,`re`)\n) ENGINE=InnoDB",
		unversioned("CREATE TABLE `sv2` (\n  `id` int(11) NOT NULL,\n  `rs` timestamp(6) GENERATED ALWAYS AS ROW START INVISIBLE,\n  `re` timestamp(6) GENERATED ALWAYS AS ROW END INVISIBLE,\n  PRIMARY KEY (`id`,`re`),\n  PERIOD FOR SYSTEM_TIME (`rs`, `re`)\n) ENGINE=InnoDB WITH SYSTEM VERSIONING"),
		"the PERIOD was the last definition: the comma before it goes too")

	assert.Equal(t, "CREATE TABLE `svp` (\n  `id` int(11) DEFAULT NULL\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		unversioned("CREATE TABLE `svp` (\n  `id` int(11) DEFAULT NULL\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 WITH SYSTEM VERSIONING\n PARTITION BY SYSTEM_TIME INTERVAL 1 MONTH STARTS TIMESTAMP'2026-12-01 00:00:00'\n(PARTITION `p0` HISTORY ENGINE = InnoDB,\n PARTITION `pn` CURRENT ENGINE = InnoDB)"))

	named := "CREATE TABLE `t` (\n  `a with system versioning` int(11) DEFAULT NULL COMMENT 'x GENERATED ALWAYS AS ROW START',\n  `b` varchar(40) DEFAULT ' WITH SYSTEM VERSIONING '\n) ENGINE=InnoDB COMMENT='it''s WITH SYSTEM VERSIONING'"
	assert.Equal(t, named, unversioned(named), "names, defaults and comments are not clauses")
	assert.Equal(t, "CREATE TABLE `a with system versioning` (\n  `x``y` int(11) DEFAULT NULL\n) ENGINE=InnoDB COMMENT='a\\' WITH SYSTEM VERSIONING'",
		unversioned("CREATE TABLE `a with system versioning` (\n  `x``y` int(11) DEFAULT NULL WITHOUT SYSTEM VERSIONING\n) ENGINE=InnoDB COMMENT='a\\' WITH SYSTEM VERSIONING' WITH SYSTEM VERSIONING"))
}

// A line break inside a quoted name or string is not the end of a
// definition: the replica gets the column under its exact name.
func TestCreateLinesKeepQuotedLineBreaks(t *testing.T) {
	create := "CREATE TABLE `t\nx` (\n  `a\nb` int(11) DEFAULT NULL COMMENT 'c\nd',\n  `e` int(11) NOT NULL,\n  PRIMARY KEY (`e`),\n  KEY `k\nk` (`a\nb`)\n) ENGINE=MyISAM"
	lines, _ := createLines(create)
	assert.Equal(t, []string{"CREATE TABLE `t\nx` (", "  `a\nb` int(11) DEFAULT NULL COMMENT 'c\nd',", "  `e` int(11) NOT NULL,",
		"  PRIMARY KEY (`e`),", "  KEY `k\nk` (`a\nb`)", ") ENGINE=MyISAM"}, lines)
	assert.Equal(t, map[string]string{"a\nb": "`a\nb` int(11) DEFAULT NULL COMMENT 'c\nd'", "e": "`e` int(11) NOT NULL"}, columnDefs(create))
	rest, cut := splitIndexes(create)
	assert.Equal(t, []string{"KEY `k\nk` (`a\nb`)"}, cut)
	assert.Equal(t, "CREATE TABLE `t\nx` (\n  `a\nb` int(11) DEFAULT NULL COMMENT 'c\nd',\n  `e` int(11) NOT NULL,\n  PRIMARY KEY (`e`)\n) ENGINE=MyISAM", rest)
}
