package load_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

func TestTableResultReport(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 3, 10, 2, 0, 0, 0, time.UTC)
	base := load.TableResult{Table: "Patient Notes", Target: "patient_notes", Mode: load.ModeIncremental, Reason: "change_seq 3 → 5",
		RowsRead: 10, RowsWritten: 8, RowsDeleted: 2, Started: start, Duration: 1500 * time.Millisecond,
		Conversions: map[string]map[string]int64{"Birthdate": {"zero_date": 3}}, Changes: []string{"add column Ward"}}
	cases := []struct {
		status, err string
		want        report.TableStatus
	}{
		{load.StatusOK, "", report.TableOK},
		{load.StatusFailed, "raw row count 9 differs", report.TableFailed},
		{load.StatusStopped, "", report.TableStopped},
		{load.StatusPlanned, "", report.TablePlanned},
	}
	for _, c := range cases {
		r := base
		r.Status, r.Error = c.status, c.err
		e := r.Report()
		assert.Equal(t, c.want, e.Status, c.status)
		assert.Equal(t, c.err, e.Error, c.status)
		assert.Equal(t, report.PhaseLoad, e.Phase)
		assert.Equal(t, "patient_notes", e.Target, "the raw name when it differs")
		assert.Equal(t, "incremental", e.Mode)
		assert.Equal(t, start, e.StartedAt)
		assert.Equal(t, start.Add(1500*time.Millisecond), e.FinishedAt)
		assert.Equal(t, 1.5, e.DurationSeconds)
		assert.Equal(t, []int64{10, 8, 2, 3, 0}, []int64{e.RowsRead, e.RowsWritten, e.RowsDeleted, e.ConversionTotal(), e.SourceQueries})
		assert.Equal(t, []string{"add column Ward"}, e.SchemaChanges)
	}
	same := base
	same.Target, same.Conversions = same.Table, map[string]map[string]int64{}
	e := same.Report()
	assert.Empty(t, e.Target, "no target when raw keeps the source's name")
	assert.Nil(t, e.Conversions, "no conversions: absent from the JSON")
}
