package demo

import (
	"testing"
	"time"
)

// BenchmarkRow measures the generator alone (no database) on a wide table,
// to show that seeding is bound by the server, not by generating values.
// Run: go test -run '^$' -bench Row ./internal/demo/
func BenchmarkRow(b *testing.B) {
	t := &table{Name: "procedurelog", PK: []string{"ProcNum"}, SeqPK: 0, Columns: []column{
		{Name: "ProcNum", DataType: "bigint"}, {Name: "PatNum", DataType: "bigint", FK: "patient"},
		{Name: "ProcDate", DataType: "date"}, {Name: "ProcFee", DataType: "double"},
		{Name: "ToothNum", DataType: "varchar", MaxLen: 2}, {Name: "Surf", DataType: "varchar", MaxLen: 10},
		{Name: "Note", DataType: "text", MaxLen: 65535, Nullable: true}, {Name: "DateTStamp", DataType: "timestamp"},
		{Name: "DateEntryC", DataType: "datetime"}, {Name: "ProcStatus", DataType: "tinyint", Type: "tinyint(3) unsigned"},
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
