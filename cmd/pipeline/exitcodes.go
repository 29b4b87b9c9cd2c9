package main

// Exit codes: the contract with schedulers (cron, systemd, Airflow). Each
// code has one meaning, documented in the README's "Exit codes" table; a
// scheduler retries on exitLocked and exitUnavailable, alerts on
// exitFailed, and does neither on exitOutsideWindow.
const (
	exitOK            = 0   // everything asked for succeeded (verify: identical; status: every table current)
	exitFailed        = 1   // some tables failed, differ (verify) or are stale (status); the others were done
	exitConfig        = 2   // configuration or usage error: nothing was touched; fix it and run again
	exitLocked        = 3   // another run holds the replica or warehouse lock: retry later
	exitUnavailable   = 4   // a database could not be reached or refused the connection: retry later
	exitOutsideWindow = 5   // outside pipeline.yml's schedule.window (or the window closed mid-run; resumes next run)
	exitInterrupted   = 130 // stopped by SIGINT or SIGTERM; committed work is kept, the next run resumes
)
