# defbuilder: turn pixi's bash activation into a static POSIX-sh file.
# Usage: bash THIS HOOK OUT KEEP_PIXI_EXE
# HOOK is `pixi shell-hook --shell bash` output. It is sourced here, at build time,
# in bash (package activate.d scripts are often bash-only); every exported variable
# it adds or changes is written to OUT as a quoted `export`. A variable that grew
# around its build-time value (PATH, LD_LIBRARY_PATH...), or any new *PATH or
# XDG_*_DIRS list, is written as entries added to its *runtime* value, so what the
# final base image sets is kept.
# Functions (pixi()), PS1 and completions are not variables and are left out.
set -eu
hook=$1
out=$2
keep_pixi_exe=$3

q() {
    # POSIX single quoting; plain words stay bare (like defbuilder.render.sh_quote)
    local v=$1
    if [[ -n $v && $v != *[!A-Za-z0-9_@+=:,./-]* ]]; then
        printf '%s' "$v"
    else
        printf "'%s'" "${v//\'/\'\\\'\'}"
    fi
}

declare -A before=()
while IFS= read -r -d '' kv; do
    before[${kv%%=*}]=${kv#*=}
done < <(env -0)

set +eu
# shellcheck disable=SC1090
. "$hook"
set -eu

declare -A after=()
while IFS= read -r -d '' kv; do
    after[${kv%%=*}]=${kv#*=}
done < <(env -0)

emit_entries() {
    # $1 name, $2 prepend|append, $3 colon-separated entries
    local name=$1 mode=$2 entries=$3 entry
    local -a list=()
    IFS=: read -r -a list <<< "$entries"
    if [ "$mode" = prepend ]; then
        local i
        for (( i=${#list[@]}-1; i>=0; i-- )); do
            entry=${list[i]}
            [ -n "$entry" ] || continue
            printf 'case ":${%s:-}:" in\n' "$name"
            printf '*%s*) ;;\n' "$(q ":$entry:")"
            printf '*) %s=%s"${%s:+:$%s}" ;;\n' "$name" "$(q "$entry")" "$name" "$name"
            printf 'esac\n'
        done
    else
        for entry in "${list[@]}"; do
            [ -n "$entry" ] || continue
            printf 'case ":${%s:-}:" in\n' "$name"
            printf '*%s*) ;;\n' "$(q ":$entry:")"
            printf '*) %s="${%s:+$%s:}"%s ;;\n' "$name" "$name" "$name" "$(q "$entry")"
            printf 'esac\n'
        done
    fi
    printf 'export %s\n' "$name"
}

{
    printf '# Generated at build time by defbuilder from pixi shell-hook (bash), evaluated\n'
    printf '# in bash. POSIX sh: no pixi process, no functions, no prompt. Source it.\n'
    while IFS= read -r name; do
        case $name in
            PS1|_|SHLVL|PWD|OLDPWD|BASH*|CONDA_ENV_SHLVL_*) continue ;;
            PIXI_EXE) [ "$keep_pixi_exe" = 1 ] || continue ;;
        esac
        new=${after[$name]}
        if [ "${before[$name]+set}" = set ]; then
            old=${before[$name]}
            [ "$new" != "$old" ] || continue
            if [ -n "$old" ] && [ "${new%":$old"}" != "$new" ]; then
                emit_entries "$name" prepend "${new%":$old"}"
                continue
            fi
            if [ -n "$old" ] && [ "${new#"$old:"}" != "$new" ]; then
                emit_entries "$name" append "${new#"$old:"}"
                continue
            fi
        fi
        case $name in
            *PATH|XDG_*_DIRS)
                # a search-path list the final image may set too: add to it
                emit_entries "$name" prepend "$new"
                continue ;;
        esac
        printf 'export %s=%s\n' "$name" "$(q "$new")"
    done < <(printf '%s\n' "${!after[@]}" | LC_ALL=C sort)
} > "$out.tmp"
mv "$out.tmp" "$out"
