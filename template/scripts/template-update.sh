#!/usr/bin/env bash
# Brings this service up to the newest release of the template it was rendered from, the way
# the scheduled CI job does, and refuses to leave conflicts behind.
# The newest release is the template's newest version tag; a template without tags updates to
# the latest commit of its default branch. The script says which one it used.
# Exit status: 0 already up to date, or updated cleanly (review the changes, then commit them);
# 1 the update left conflicts, listed on stderr; 2 nothing was updated (dirty tree, no answers
# file, unusable template source, template unreachable).
# Copier is pinned; COPIER overrides the command (for example COPIER="copier" when installed).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
read -r -a copier <<<"${COPIER:-uvx --from copier==9.19.1 copier}"
answers=.copier-answers.yml

# The first line names the problem, the others (indented) how to fix it.
fail() {
    printf 'template-update: %s\n' "$1" >&2
    shift
    (($#)) && printf '  %s\n' "$@" >&2
    exit 2
}

# One value of the answers file, unquoted (Copier writes plain YAML scalars).
answer() {
    sed -n "s/^$1: *//p" "$answers" | sed -e "s/^'\(.*\)'\$/\1/" -e 's/^"\(.*\)"$/\1/'
}

# "release <tag>" for a tag, "commit <sha>" for anything `git describe --tags --always` gives
# that is not a tag: a bare hash (no tags) or <tag>-<n>-g<hash> (commits after a tag).
describe() {
    if [[ "$1" =~ ^[0-9a-f]{7,40}$ ]]; then
        echo "commit $1 (the template has no release tags: its latest commit)"
    elif [[ "$1" =~ -[0-9]+-g([0-9a-f]+)$ ]]; then
        echo "commit ${BASH_REMATCH[1]} (not a release: $1)"
    else
        echo "release $1"
    fi
}

# copier update may rewrite this very file: bash reads main's whole body before running it.
main() {
    [[ -f "$answers" ]] || fail "no $answers here: this project was not rendered by Copier"
    src="$(answer _src_path)"
    commit="$(answer _commit)"
    [[ -n "$src" && -n "$commit" ]] || fail "$answers records no template source (_src_path) or revision (_commit)"

    # Copier finds the template through _src_path. A URL (https://, git@, gh:, gl:) is checked by
    # Copier itself; a local path must be the absolute path of a git checkout that has _commit.
    problem=""
    case "$src" in
    *://* | git@* | gh:* | gl:*) ;;
    /* | "~"*)
        path="${src/#\~/$HOME}"
        if [[ ! -d "$path" ]]; then
            problem="that path does not exist on this machine"
        elif ! top="$(git -C "$path" rev-parse --show-toplevel 2>/dev/null)" ||
            [[ "$(cd "$path" && pwd -P)" != "$(cd "$top" && pwd -P)" ]]; then
            problem="that path is not the root of a git repository (Copier updates only from git)"
        elif [[ "$(cd "$top" && pwd -P)" == "$(pwd -P)" ]]; then
            problem="that path is this project itself, not the template"
        elif ! git -C "$path" cat-file -e "$commit^{commit}" 2>/dev/null; then
            problem="that repository has no revision $commit, the one this project was rendered from"
        fi
        ;;
    *) problem="a relative path, which Copier reads from this project's directory, not from where 'copier copy' ran" ;;
    esac
    if [[ -n "$problem" ]]; then
        fail "$answers records the template source (_src_path) as '$src': $problem." \
            "Fix: point _src_path at the template's git URL (or at the absolute path of a local git" \
            "checkout that has revision $commit), commit, and run this script again:" \
            "    sed -i.orig 's|^_src_path: .*|_src_path: TEMPLATE|' $answers && rm $answers.orig" \
            "    git commit --message 'Record where the template lives' $answers" \
            "    bash scripts/template-update.sh" \
            "where TEMPLATE is, for example, https://github.com/ORG/REPO.git."
    fi

    if [[ -n "$(git status --porcelain)" ]]; then
        fail "commit or stash your changes first: copier update needs a clean tree"
    fi

    status=0
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    "${copier[@]}" check-update --quiet 2>"$log" || status=$?
    case "$status" in
    0)
        echo "template-update: already on the newest template version, $(describe "$commit")"
        exit 0
        ;;
    2) ;; # a newer release exists
    *)
        # Copier's last line names the cause (unreachable URL, unknown revision) without its traceback.
        fail "could not check the template at $src (copier check-update exited $status):" \
            "  $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)" \
            "Check that _src_path in $answers is the template's git URL (or an absolute path of a" \
            "checkout) and that it has revision $commit."
        ;;
    esac

    # No --trust: the template has no tasks, migrations or extensions that would need it.
    "${copier[@]}" update --defaults --conflict inline

    # copier update exits 0 even when it leaves conflict markers or rejected hunks: look for them.
    # A conflicted file is in the index three times (base, ours, theirs): list it once.
    mapfile -t conflicted < <(
        git ls-files -z --cached --others --exclude-standard | sort -zu |
            xargs -0 grep -lE '^(<<<<<<<|>>>>>>>) ' -- 2>/dev/null || true
    )
    mapfile -t rejected < <(git ls-files --others --exclude-standard -- '*.rej')
    if ((${#conflicted[@]} + ${#rejected[@]})); then
        echo "template-update: the update left conflicts to resolve by hand:" >&2
        printf '  %s\n' "${conflicted[@]}" "${rejected[@]}" >&2
        exit 1
    fi
    echo "template-update: updated to $(describe "$(answer _commit)")"
}

main "$@"
exit
