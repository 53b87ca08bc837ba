"""Layer 5, the analysis engines the check library and `sealgate lint` share, registering no check: rule files
(rulefiles) and promtool's output (promtool), PromQL (promql), the parecer — every metric and label judged against
expositions and Prometheus (parecer) —, Grafana dashboards (grafana_query) and the Grafana API (grafana), the compose
file as Compose resolves it (compose), backups and restores (backups, restore), alert coverage (alert_coverage), and
the stack description's services by role (described)."""
