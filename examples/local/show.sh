#!/bin/sh
# Prints what the app received, values masked.
for name in DB_USER DB_PASSWORD DB_PORT API_TOKEN TLS_CERT LOG_LEVEL; do
	eval "value=\${$name-}"
	case $name in
	TLS_CERT) printf '%-12s file %s (%s bytes, mode %s)\n' "$name" "$value" "$(wc -c <"$value")" "$(stat -c %a "$value")" ;;
	*) printf '%-12s %s*** (%s chars)\n' "$name" "$(printf %s "$value" | cut -c1-2)" "${#value}" ;;
	esac
done
