package report

import "time"

// The fields below are filled by `pipeline status` only: its entries are
// one per table (no phase) with the table's freshness.

// RunRef names a stored run: status's header line.
type RunRef struct {
	RunID      string    `json:"run_id"`
	Command    Command   `json:"command"`
	Status     Status    `json:"status"`
	ExitCode   int       `json:"exit_code"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// Ref is r's RunRef.
func (r *Report) Ref() *RunRef {
	return &RunRef{RunID: r.RunID, Command: r.Command, Status: r.Status, ExitCode: r.ExitCode, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
}

// Freshness is what status knows about a table across runs: from the run
// history, the replica's copy status and raw's load state.
type Freshness struct {
	// ConfirmedCurrentAt: raw matched the source as of this instant (the
	// history's definition); nil: never.
	ConfirmedCurrentAt *time.Time `json:"confirmed_current_at"`
	AgeSeconds         *float64   `json:"age_seconds"`              // how long ago that was; nil: never
	Stale              bool       `json:"stale"`                    // not confirmed current within stale_after
	LastReplicate      *PhaseRun  `json:"last_replicate,omitempty"` // latest successful
	LastLoad           *PhaseRun  `json:"last_load,omitempty"`      // latest successful
	LastVerify         *PhaseRun  `json:"last_verify,omitempty"`    // latest, identical or not
	LastFailure        *PhaseRun  `json:"last_failure,omitempty"`   // latest failed (or differing) phase, with its error
	Failing            bool       `json:"failing"`                  // LastFailure is later than that phase's last success
	// The replica's copy status: the watermark reached, how its last copy
	// ended (ok, running, failed, stopped) and its change sequence.
	Watermark        string `json:"watermark,omitempty"`
	ReplicaStatus    string `json:"replica_status,omitempty"`
	ReplicaChangeSeq *int64 `json:"replica_change_seq,omitempty"`
	// How far raw lags the replica: the change sequence raw holds, the
	// replica commits it lacks, and the time between the replica's last
	// copy and the start of the load raw holds (0 when it lacks none).
	LoadedChangeSeq *int64   `json:"loaded_change_seq,omitempty"`
	ChangesBehind   *int64   `json:"changes_behind,omitempty"`
	LagSeconds      *float64 `json:"lag_seconds,omitempty"`
}

// PhaseRun is one stored entry of a table's phase.
type PhaseRun struct {
	RunID       string      `json:"run_id"`
	Command     Command     `json:"command"`
	Phase       Phase       `json:"phase"`
	Mode        string      `json:"mode"`
	Status      TableStatus `json:"status"`
	StartedAt   time.Time   `json:"started_at"`
	FinishedAt  time.Time   `json:"finished_at"`
	RowsRead    int64       `json:"rows_read"`
	RowsWritten int64       `json:"rows_written"`
	RowsDeleted int64       `json:"rows_deleted"`
	Error       string      `json:"error,omitempty"`
	Verify      *Verify     `json:"verify,omitempty"`
}
