package verify_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// Composite keys and text keys are compared by ranges and their rows named
// on both hops (raw rows under a text key, which PostgreSQL sorts by
// another collation, are found by the replica's key list); a table without
// a key is compared whole, by counts of missing and extra rows.
func TestVerifyKeyShapes(t *testing.T) {
	e := newEnv(t)
	exec(t, e.src,
		"CREATE TABLE visit (PatNum INT NOT NULL, VisitDate DATE NOT NULL, Seq SMALLINT NOT NULL, Note VARCHAR(20),"+
			" PRIMARY KEY (PatNum, VisitDate, Seq)) ENGINE=MyISAM",
		"INSERT INTO visit SELECT seq DIV 6, '2024-01-01' + INTERVAL (seq % 3) DAY, seq % 2, CONCAT('v', seq) FROM seq_1_to_3000",
		"CREATE TABLE code (Code VARCHAR(20) NOT NULL PRIMARY KEY, Descript VARCHAR(40)) ENGINE=MyISAM",
		"INSERT INTO code SELECT CONCAT(IF(seq % 2, 'D', 'd'), LPAD(seq, 4, '0'), IF(seq % 7 = 0, ' é', '')), CONCAT('code ', seq) FROM seq_1_to_1200",
		"CREATE TABLE loose (A INT, B VARCHAR(5)) ENGINE=MyISAM",
		"INSERT INTO loose SELECT seq % 10, IF(seq % 3, 'x', NULL) FROM seq_1_to_100",
	)
	cfg := e.config(t, 500)
	e.pipeline(t, cfg)
	res := e.verify(t, cfg, verify.Options{})
	for _, r := range res.Tables {
		require.NoError(t, r.Err, r.Table)
		assert.False(t, r.Differs(), "%s after a run: %+v %+v", r.Table, r.SourceReplica, r.ReplicaRaw)
	}
	assert.Equal(t, verify.ModeKeyless, byTable(t, res, "loose").Mode)

	exec(t, e.repFix,
		"UPDATE visit SET Note = 'edited' WHERE PatNum = 100 AND VisitDate = '2024-01-02' AND Seq = 1",
		"DELETE FROM visit WHERE PatNum = 300 AND VisitDate = '2024-01-01' AND Seq = 0",
		"INSERT INTO code VALUES ('ZZZ-extra', 'only in the replica')",
		"DELETE FROM loose WHERE A = 3 LIMIT 1",
	)
	e.pgExec(t,
		`DELETE FROM raw.visit WHERE "PatNum" = 400 AND "VisitDate" = '2024-01-03' AND "Seq" = 1`,
		`INSERT INTO raw.code VALUES ('raw-only', 'only in raw')`,
		`UPDATE raw.code SET "Descript" = 'changed in raw' WHERE "Code" = 'd0014 é'`,
		`INSERT INTO raw.loose VALUES (1, 'x')`,
	)
	res = e.verify(t, cfg, verify.Options{})
	visit, code, loose := byTable(t, res, "visit"), byTable(t, res, "code"), byTable(t, res, "loose")
	for _, r := range res.Tables {
		require.NoError(t, r.Err, r.Table)
	}
	assert.Equal(t, []string{`["100","2024-01-02","1"]`}, keys(visit.SourceReplica.ChangedKeys))
	assert.Equal(t, []string{`["300","2024-01-01","0"]`}, keys(visit.SourceReplica.MissingKeys))
	assert.Equal(t, []string{`["100","2024-01-02","1"]`}, keys(visit.ReplicaRaw.ChangedKeys), "raw has the replica's old value")
	assert.Equal(t, []string{`["300","2024-01-01","0"]`}, keys(visit.ReplicaRaw.ExtraKeys))
	assert.Equal(t, []string{`["400","2024-01-03","1"]`}, keys(visit.ReplicaRaw.MissingKeys))

	assert.Equal(t, []string{`["ZZZ-extra"]`}, keys(code.SourceReplica.ExtraKeys))
	assert.EqualValues(t, 1, code.SourceReplica.Differing())
	assert.Equal(t, []string{`["ZZZ-extra"]`}, keys(code.ReplicaRaw.MissingKeys))
	assert.Equal(t, []string{`["d0014 é"]`}, keys(code.ReplicaRaw.ChangedKeys))
	assert.Equal(t, []string{`["raw-only"]`}, keys(code.ReplicaRaw.ExtraKeys))

	assert.EqualValues(t, 1, loose.SourceReplica.Missing)
	assert.EqualValues(t, 0, loose.SourceReplica.Extra)
	assert.EqualValues(t, 2, loose.ReplicaRaw.Extra, "the row deleted from the replica, and a duplicate added to raw")
	assert.EqualValues(t, 0, loose.ReplicaRaw.Missing)
	assert.Empty(t, loose.SourceReplica.Keys(), "no key: rows cannot be named")
}
