package load

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

func testPlan(t *testing.T, tbl *tables.Table, key []string, cols ...schema.Column) *plan {
	t.Helper()
	p, err := buildPlan(tbl, &schema.Table{Name: tbl.Name, Columns: cols, PrimaryKey: key}, Options{})
	require.NoError(t, err)
	return p
}

var (
	colNum   = schema.Column{Name: "PatNum", DataType: "bigint", Type: "bigint(20)"}
	colName  = schema.Column{Name: "LName", DataType: "varchar", Type: "varchar(100)", Nullable: true}
	colStamp = schema.Column{Name: "DateTStamp", DataType: "timestamp", Type: "timestamp"}
)

type decideCase struct {
	name   string
	p      *plan
	st     *loadState
	exists bool
	copies map[string]state.Copy
	full   bool
	mode   Mode
	reason string
}

func TestDecide(t *testing.T) {
	t.Parallel()
	incr := &tables.Table{Name: "patient", Strategy: tables.Incremental, WatermarkColumns: []string{"DateTStamp"}}
	p := testPlan(t, incr, []string{"PatNum"}, colNum, colName, colStamp)
	sig, wm, seq, other := p.signature, "2024-01-01 00:00:00", int64(7), `{"columns":[["PatNum","bigint"]],"key":["PatNum"]}`
	good := &loadState{Status: StatusOK, Signature: &sig, Watermark: &wm, ChangeSeq: &seq}
	tests := []decideCase{
		{"flag", p, good, true, nil, true, ModeFull, "--full-refresh"},
		{"new table", p, nil, false, nil, false, ModeFull, "raw table does not exist yet"},
		{"raw table without state", p, nil, true, nil, false, ModeFull, "no load state for the existing raw table"},
		{"schema changed", p, &loadState{Status: StatusOK, Signature: &other, Watermark: &wm}, true, nil, false, ModeFull, "schema changed: rebuild"},
		{"change_seq loaded", p, good, true, map[string]state.Copy{"patient": {ChangeSeq: 7}}, false, ModeUnchanged, "replica change_seq 7 already loaded"},
		{"change_seq moved", p, good, true, map[string]state.Copy{"patient": {ChangeSeq: 8}}, false, ModeIncremental, "rows with DateTStamp >= 2024-01-01 00:00:00"},
		{"untracked", p, good, true, nil, false, ModeIncremental, "rows with DateTStamp >= 2024-01-01 00:00:00"},
		{"last load failed", p, &loadState{Status: StatusFailed, Signature: &sig, Watermark: &wm, ChangeSeq: &seq}, true, map[string]state.Copy{"patient": {ChangeSeq: 7}}, false, ModeIncremental, "rows with DateTStamp >= 2024-01-01 00:00:00"},
		{"no watermark yet", p, &loadState{Status: StatusOK, Signature: &sig}, true, nil, false, ModeFull, "no watermark loaded yet"},
	}
	noKey := testPlan(t, &tables.Table{Name: "log", Strategy: tables.Incremental, WatermarkColumns: []string{"DateTStamp"}}, nil, colName, colStamp)
	nk := noKey.signature
	fullTable := testPlan(t, &tables.Table{Name: "def", Strategy: tables.FullTable}, []string{"PatNum"}, colNum, colName)
	ft := fullTable.signature
	tests = append(tests,
		decideCase{"no key", noKey, &loadState{Status: StatusOK, Signature: &nk, Watermark: &wm}, true, nil, false, ModeFull, "no primary key"},
		decideCase{"full_table", fullTable, &loadState{Status: StatusOK, Signature: &ft}, true, nil, false, ModeFull, "extraction_strategy full_table"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw *shape // the raw table as the state says it was built
			if tt.exists {
				raw = &shape{}
				if tt.st != nil && tt.st.Signature != nil {
					raw = built(tt.st)
				}
			}
			mode, reason, _ := decide(tt.p, tt.st, raw, tt.copies, tt.full)
			assert.Equal(t, tt.mode, mode)
			assert.Equal(t, tt.reason, reason)
		})
	}
}

func TestSchemaChanges(t *testing.T) {
	t.Parallel()
	old := `{"columns":[["A","bigint"],["B","text"],["C","date"]],"key":["A"]}`
	nu := `{"columns":[["A","bigint"],["B","integer"],["D","text"]],"key":["A","B"]}`
	assert.Equal(t, []string{
		`column "B" type changed text → integer`,
		`column "D" added (text)`,
		`column "C" removed`,
		`primary key changed (A) → (A, B)`,
	}, schemaChanges(old, nu))
	assert.Equal(t, []string{"column order changed"},
		schemaChanges(`{"columns":[["A","bigint"],["B","text"]],"key":["A"]}`, `{"columns":[["B","text"],["A","bigint"]],"key":["A"]}`))
}

func TestUpsertAndWatermarkSQL(t *testing.T) {
	t.Parallel()
	tbl := &tables.Table{Name: "patient", Strategy: tables.Incremental, WatermarkColumns: []string{"DateTStamp"}, LookbackSeconds: 300}
	p := testPlan(t, tbl, []string{"PatNum"}, colNum, colName, colStamp)
	assert.Equal(t, `INSERT INTO "raw"."patient" AS t ("PatNum", "LName", "DateTStamp")
SELECT "PatNum", "LName", "DateTStamp" FROM stage
ON CONFLICT ("PatNum") DO UPDATE SET "LName" = EXCLUDED."LName", "DateTStamp" = EXCLUDED."DateTStamp"
WHERE ROW(t."LName", t."DateTStamp") IS DISTINCT FROM ROW(EXCLUDED."LName", EXCLUDED."DateTStamp")`, p.upsertSQL("stage"))
	assert.Equal(t, "`DateTStamp` >= '2024-01-01 00:00:00' - INTERVAL 300 SECOND", p.watermarkCond("2024-01-01 00:00:00"))

	keyOnly := testPlan(t, &tables.Table{Name: "link"}, []string{"PatNum"}, colNum)
	assert.Contains(t, keyOnly.upsertSQL("stage"), "DO NOTHING")

	intWM := testPlan(t, &tables.Table{Name: "log", WatermarkColumns: []string{"PatNum"}, LookbackSeconds: 300}, []string{"PatNum"}, colNum)
	assert.Equal(t, "`PatNum` >= '41'", intWM.watermarkCond("41"), "no lookback arithmetic on a number")
	assert.Equal(t, `'it\'s \\ x'`, sqlLiteral(`it's \ x`))
}

func TestBuildPlanRejects(t *testing.T) {
	t.Parallel()
	// A name over PostgreSQL's 63 bytes is not refused (MySQL allows it) but
	// shortened with a hash, never cut silently.
	long := schema.Column{Name: "ThisColumnNameIsFarTooLongForPostgreSQLWhichKeepsOnlySixtyThreeBytes", DataType: "int", Type: "int(11)"}
	p, err := buildPlan(&tables.Table{Name: "t"}, &schema.Table{Name: "t", Columns: []schema.Column{long}}, Options{})
	require.NoError(t, err)
	assert.Equal(t, "ThisColumnNameIsFarTooLongForPostgreSQLWhichKeepsOnlyS_"+p.cols[0].Target[55:], p.cols[0].Target)
	assert.Len(t, p.cols[0].Target, 63)

	_, err = buildPlan(&tables.Table{Name: "t", WatermarkColumns: []string{"Gone"}}, &schema.Table{Name: "t", Columns: []schema.Column{colNum}}, Options{})
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), `"Gone"`)
}
