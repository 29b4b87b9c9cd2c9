package report

import "time"

// Phase is the step of the data path a table entry belongs to.
type Phase string

// Phases.
const (
	PhaseReplicate Phase = "replicate" // source → replica
	PhaseLoad      Phase = "load"      // replica → raw
	PhaseVerify    Phase = "verify"    // source ↔ replica ↔ raw compared
)

// TableStatus is how one table's phase ended.
type TableStatus string

// Table statuses.
const (
	TableOK      TableStatus = "ok"      // done (including "nothing to change": the table is confirmed current)
	TableFailed  TableStatus = "failed"  // Error says why; nothing half-done was published
	TableSkipped TableStatus = "skipped" // load: the replica copy is not complete; raw keeps its last good copy (counts as failed)
	TableStopped TableStatus = "stopped" // stopped by the window or a signal after a committed chunk; resumes next run
	TableDiffers TableStatus = "differs" // verify: a hop found differences (Verify has them)
	TableStale   TableStatus = "stale"   // status: not confirmed current within stale_after
	TablePlanned TableStatus = "planned" // --dry-run: what would be done
)

// Table is one table's entry for one phase of a run.
type Table struct {
	Table           string      `json:"table"`            // source table name
	Target          string      `json:"target,omitempty"` // name in raw when it differs (snake_case)
	Phase           Phase       `json:"phase,omitempty"`  // every command's entries have one; status's (per table) none
	Mode            string      `json:"mode"`             // full | incremental | shadow | unchanged | …
	Plan            string      `json:"plan,omitempty"`
	Status          TableStatus `json:"status"`
	StartedAt       time.Time   `json:"started_at"`
	FinishedAt      time.Time   `json:"finished_at"`
	DurationSeconds float64     `json:"duration_seconds"`
	RowsRead        int64       `json:"rows_read"`
	RowsWritten     int64       `json:"rows_written"`
	RowsDeleted     int64       `json:"rows_deleted"`
	// Conversions counts values changed on purpose: column → kind → count
	// (zero_date, invalid_date, nul_byte, invalid_utf8).
	Conversions   Conversions `json:"conversions,omitempty"`
	SchemaChanges []string    `json:"schema_changes,omitempty"`
	SourceQueries int64       `json:"source_queries"`
	Error         string      `json:"error,omitempty"`
	Verify        *Verify     `json:"verify,omitempty"`    // phase verify only
	Freshness     *Freshness  `json:"freshness,omitempty"` // status only
}

// Conversions is column → kind → count.
type Conversions map[string]map[string]int64

// Total is the number of converted values.
func (c Conversions) Total() int64 {
	var n int64
	for _, kinds := range c {
		for _, v := range kinds {
			n += v
		}
	}
	return n
}

// ConversionTotal is the number of values converted in the entry.
func (t Table) ConversionTotal() int64 { return t.Conversions.Total() }

// Hop names the two comparisons verify makes.
type Hop string

// Hops.
const (
	HopSourceReplica Hop = "source_replica"
	HopReplicaRaw    Hop = "replica_raw"
)

// Verify is what verify found for one table.
type Verify struct {
	Hops     []HopResult `json:"hops"`
	Complete bool        `json:"complete"` // false when the budget ran out mid-table (resumes next time)
}

// HopResult compares one pair of databases for one table.
type HopResult struct {
	Hop          Hop      `json:"hop"`
	Identical    bool     `json:"identical"`
	RowsCompared int64    `json:"rows_compared"`
	Missing      int64    `json:"missing"` // in the upstream side, not in the downstream one
	Extra        int64    `json:"extra"`   // in the downstream side only
	Changed      int64    `json:"changed"` // same key, different values
	SampleKeys   []string `json:"sample_keys,omitempty"`
	Repaired     int64    `json:"repaired,omitempty"`
	// Pending counts source rows changed after the last replicate read
	// them: the next run copies them, so they are not differences.
	Pending int64 `json:"pending,omitempty"`
}
