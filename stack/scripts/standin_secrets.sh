#!/usr/bin/env bash
set -euo pipefail
# standin_secrets.sh — random values for the stack's secrets, for machines where the stand-ins take the place of the
# real services (integrations-standin for Slack and PagerDuty, moto's S3 server for the offsite storage):
#
#   eval "$(bash stack/scripts/standin_secrets.sh)"
#
# prints one `export NAME=value` line for each of SLACK_WEBHOOK_URL, PAGERDUTY_ROUTING_KEY, OFFSITE_S3_ACCESS_KEY_ID
# and OFFSITE_S3_SECRET_ACCESS_KEY that is not already set (a set one is kept). The values are new at every call,
# exist only in the shell that evals them, and are never written to a file. The webhook URL points at
# integrations-standin, as Alertmanager reaches it inside the stack (the local backend rewrites the address).
# For real Slack/PagerDuty/S3, export the real values instead (from your secret store) and do not run this.

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
random_upper() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F'; }

declare -A values=(
  [SLACK_WEBHOOK_URL]="http://integrations-standin:5002/services/T$(random_upper 4)/B$(random_upper 4)/$(random_hex 12)"
  [PAGERDUTY_ROUTING_KEY]="$(random_hex 16)"  # 32 characters, as an Events API v2 integration key
  [OFFSITE_S3_ACCESS_KEY_ID]="SG$(random_upper 9)"
  [OFFSITE_S3_SECRET_ACCESS_KEY]="$(random_hex 20)"
)
for name in SLACK_WEBHOOK_URL PAGERDUTY_ROUTING_KEY OFFSITE_S3_ACCESS_KEY_ID OFFSITE_S3_SECRET_ACCESS_KEY; do
  if [[ -z "${!name:-}" ]]; then
    printf 'export %s=%q\n' "$name" "${values[$name]}"
  fi
done
