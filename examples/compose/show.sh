#!/bin/sh
# Prints what the app received, values masked: the stand-in for a real app.
for name in DB_HOST DB_USER DB_NAME DB_PASSWORD PGPASSWORD API_TOKEN API_ENDPOINT API_CREDENTIALS_FILE LOG_LEVEL; do
	eval "value=\${$name-}"
	case $name in
	*_FILE) printf '%-22s file %s (%s bytes, mode %s)\n' "$name" "$value" "$(wc -c <"$value" | tr -d ' ')" "$(stat -c %a "$value")" ;;
	DB_HOST | DB_USER | DB_NAME | LOG_LEVEL) printf '%-22s %s\n' "$name" "$value" ;;
	*) printf '%-22s %s*** (%s chars)\n' "$name" "$(printf %s "$value" | cut -c1-2)" "${#value}" ;;
	esac
done
