#!/usr/bin/env bash
# Prints the Debian bookworm apt sources this machine itself is configured with, one
# "<uri> <suite>" per line, for the suites bookworm, bookworm-updates and bookworm-security
# (component main, type deb), in the order apt reads them. No mirror is ever written down in the
# project: the base image uses whatever this machine's apt already uses.
#
# Reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line format) and
# /etc/apt/sources.list.d/*.sources (deb822). Entries that are not Debian's bookworm main
# (third-party repositories: other suites or components) are ignored; disabled files
# (*.disabled*, "Enabled: no") are not read.
#
#   debian-sources.sh           all matching "<uri> <suite>" lines
#   debian-sources.sh --mirror  only the first URI serving suite bookworm (what debootstrap uses)
#
# RCE_DEBIAN_MIRROR overrides the mirror (for machines that are not Debian bookworm themselves).
set -euo pipefail

root=${APT_ROOT:-}   # for testing: read sources under another root

want_suite() {
    case "$1" in bookworm | bookworm-updates | bookworm-security) return 0 ;; *) return 1 ;; esac
}

# One-line format: deb [opt=val ...] uri suite component...
parse_list() {
    local file=$1 line type uri suite comps
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        # drop the [options] block, if any
        line=$(sed -E 's/\[[^]]*\]//' <<<"$line")
        read -r type uri suite comps <<<"$line" || true
        [ "${type:-}" = deb ] || continue
        [ -n "${uri:-}" ] && [ -n "${suite:-}" ] || continue
        want_suite "$suite" || continue
        case " $comps " in *" main "*) ;; *) continue ;; esac
        echo "${uri%/} $suite"
    done <"$file"
}

# deb822 format: stanzas separated by blank lines; fields Types, URIs, Suites, Components, Enabled.
parse_sources() {
    awk '
        function flush(   n, m, i, j, uris, suites) {
            if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " comps " ") ~ / main /) {
                n = split(uris_f, uris, " ")
                m = split(suites_f, suites, " ")
                for (i = 1; i <= n; i++)
                    for (j = 1; j <= m; j++) order[++k] = uris[i] " " suites[j]
            }
            types = uris_f = suites_f = comps = enabled = ""; field = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ {            # continuation line of a multi-line field
            v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (field == "uris") uris_f = uris_f " " v
            else if (field == "suites") suites_f = suites_f " " v
            else if (field == "components") comps = comps " " v
            next
        }
        {
            i = index($0, ":"); if (i == 0) next
            key = tolower(substr($0, 1, i - 1)); v = substr($0, i + 1); gsub(/^[ \t]+|[ \t]+$/, "", v)
            field = key
            if (key == "types") types = v
            else if (key == "uris") uris_f = v
            else if (key == "suites") suites_f = v
            else if (key == "components") comps = v
            else if (key == "enabled") enabled = tolower(v)
        }
        END {
            flush()
            for (i = 1; i <= k; i++) print order[i]
        }
    ' "$1" | while read -r uri suite; do
        want_suite "$suite" && echo "${uri%/} $suite"
    done
}

all_sources() {
    local f
    if [ -f "$root/etc/apt/sources.list" ]; then parse_list "$root/etc/apt/sources.list"; fi
    for f in "$root"/etc/apt/sources.list.d/*; do
        [ -f "$f" ] || continue
        case "$f" in
            *.list) parse_list "$f" ;;
            *.sources) parse_sources "$f" ;;
        esac
    done | awk '!seen[$0]++'
}

if [ "${1:-}" = --mirror ]; then
    if [ -n "${RCE_DEBIAN_MIRROR:-}" ]; then
        echo "${RCE_DEBIAN_MIRROR%/}"
        exit 0
    fi
    mirror=$(all_sources | awk '$2 == "bookworm" { print $1; exit }')
    if [ -z "$mirror" ]; then
        echo "debian-sources.sh: no apt source on this machine serves Debian bookworm main;" \
            "set RCE_DEBIAN_MIRROR to a Debian mirror URI" >&2
        exit 1
    fi
    echo "$mirror"
else
    all_sources
fi
