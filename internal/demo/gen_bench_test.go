package demo

import (
	"testing"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// BenchmarkRow measures the generator alone (no database) on a wide table,
// to show that seeding is bound by the server, not by generating values.
// Run: go test -run '^$' -bench Row ./internal/demo/
func BenchmarkRow(b *testing.B) {
	t := &table{Name: "procedurelog", PK: []string{"ProcNum"}, SeqPK: 0, Columns: []column{
		{Column: schema.Column{Name: "ProcNum", DataType: "bigint"}}, {Column: schema.Column{Name: "PatNum", DataType: "bigint"}, FK: "patient"},
		{Column: schema.Column{Name: "ProcDate", DataType: "date"}}, {Column: schema.Column{Name: "ProcFee", DataType: "double"}},
		{Column: schema.Column{Name: "ToothNum", DataType: "varchar", MaxLength: 2}}, {Column: schema.Column{Name: "Surf", DataType: "varchar", MaxLength: 10}},
		{Column: schema.Column{Name: "Note", DataType: "text", MaxLength: 65535, Nullable: true}}, {Column: schema.Column{Name: "DateTStamp", DataType: "timestamp"}},
		{Column: schema.Column{Name: "DateEntryC", DataType: "datetime"}}, {Column: schema.Column{Name: "ProcStatus", DataType: "tinyint", Type: "tinyint(3) unsigned"}},
	}}
	w := &world{keyName: map[string]string{"patient": "PatNum"}, maxKey: map[string]int64{"patient": 10000}}
	g := newGen(rngFor(1, t.Name), t, w, time.Time{}, "")
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = g.row(buf[:0], int64(i+1))
	}
	b.SetBytes(int64(len(buf)))
}
