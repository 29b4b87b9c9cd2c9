#!/usr/bin/env bash
# Regenerates gen/ from schemas.yaml and fails when the committed generated
# code is stale or generation left new files (kubernetes hack/verify-codegen.sh).
# Run from anywhere inside the repository.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
go generate ./gen/...
if ! git diff --exit-code -- gen; then
	echo "gen/ is stale: run 'go generate ./...' and commit the result" >&2
	exit 1
fi
if [ -n "$(git status --porcelain -- gen)" ]; then
	git status --porcelain -- gen >&2
	echo "generation left new or changed files under gen/: run 'go generate ./...' and commit them" >&2
	exit 1
fi
echo "gen/ is up to date with schemas.yaml"
