"""integrations-standin: stands in for Slack's incoming webhooks and PagerDuty's Events API v2 (see server.py)."""
