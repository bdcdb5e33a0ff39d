#!/usr/bin/env bash
# Brings this service up to the newest release of the template it was rendered from, the way
# the scheduled CI job does, and refuses to leave conflicts behind.
# Exit status: 0 already up to date, or updated cleanly (review the changes, then commit them);
# 1 the update left conflicts, listed on stderr; 2 nothing was updated (dirty tree, no answers
# file, template unreachable).
# Copier is pinned; COPIER overrides the command (for example COPIER="copier" when installed).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
read -r -a copier <<<"${COPIER:-uvx --from copier==9.19.1 copier}"

if [[ -n "$(git status --porcelain)" ]]; then
    echo "template-update: commit or stash your changes first: copier update needs a clean tree" >&2
    exit 2
fi

status=0
"${copier[@]}" check-update --quiet || status=$?
case "$status" in
0)
    echo "template-update: already on the newest template release"
    exit 0
    ;;
2) ;; # a newer release exists
*)
    echo "template-update: could not check the template (copier check-update exited $status)" >&2
    exit 2
    ;;
esac

# No --trust: the template has no tasks, migrations or extensions that would need it.
"${copier[@]}" update --defaults --conflict inline

# copier update exits 0 even when it leaves conflict markers or rejected hunks: look for them.
mapfile -t conflicted < <(
    git ls-files -z --cached --others --exclude-standard |
        xargs -0 grep -lE '^(<<<<<<<|>>>>>>>) ' -- 2>/dev/null || true
)
mapfile -t rejected < <(git ls-files --others --exclude-standard -- '*.rej')
if ((${#conflicted[@]} + ${#rejected[@]})); then
    echo "template-update: the update left conflicts to resolve by hand:" >&2
    printf '  %s\n' "${conflicted[@]}" "${rejected[@]}" >&2
    exit 1
fi
echo "template-update: updated to $(sed -n 's/^_commit: //p' .copier-answers.yml)"
