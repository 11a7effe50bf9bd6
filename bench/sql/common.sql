-- Per-entity facts every report's SQL reads, written from the definitions of each number: each lead and
-- deal with its employee, department, stage at `as_of`, last touch, open and forgotten
-- flags. Run before each report's file. Placeholders: {period_start} {period_end}
-- {as_of_end} (UTC instants of local midnights), {as_of} (a date), {lead_days},
-- {deal_days}, {portal}. The session's TimeZone is the client's, so `ts::DATE` is the
-- local calendar day. {p} ends every name this file makes: empty, or `_prev` when a
-- report's file uses it over the previous period (`-- uses: common.sql previous`).

-- setup
CREATE OR REPLACE TEMP VIEW act{p} AS
SELECT owner_type AS entity, owner_id AS entity_id,
       max(created_at) AS last_activity_at,
       arg_max(kind, (created_at, id)) AS last_activity_kind,
       count(*) FILTER (WHERE NOT completed OR completed_at >= {as_of_end}) AS planned
FROM activities
WHERE owner_type IN ('lead', 'deal') AND created_at < {as_of_end}
GROUP BY ALL;

CREATE OR REPLACE TEMP VIEW moves{p} AS
SELECT entity, entity_id,
       max(changed_at) AS last_stage_change_at,
       arg_max(stage_id, changed_at) AS stage_at,
       arg_max(pipeline_id, changed_at) AS pipeline_at
FROM stage_history
WHERE changed_at < {as_of_end}
GROUP BY ALL;

CREATE OR REPLACE TEMP VIEW d{p} AS
SELECT d.id, d.title, d.amount, d.created_at, d.closed_at, d.semantic, d.company_id,
       d.contact_id, d.lead_id, d.pipeline_id, p.name AS pipeline, d.source_id, src.name AS source, d.assigned_id AS employee_id, u.name AS employee,
       u.department_id, dep.name AS department, st.name AS stage,
       a.last_activity_at, a.last_activity_kind,
       coalesce(a.planned, 0) = 0 AS no_planned_activity,
       greatest(d.created_at, m.last_stage_change_at, a.last_activity_at) AS last_touch_at,
       d.created_at >= {period_start} AND d.created_at < {period_end} AS created_in_period,
       d.closed_at >= {period_start} AND d.closed_at < {period_end}
       AND d.closed_at < {as_of_end} AS closed_in_period,
       d.created_at < {as_of_end} AND (d.closed_at IS NULL OR d.closed_at >= {as_of_end}) AS is_open
FROM deals d
LEFT JOIN users u ON u.id = d.assigned_id
LEFT JOIN departments dep ON dep.id = u.department_id
LEFT JOIN pipelines p ON p.id = d.pipeline_id
LEFT JOIN sources src ON src.id = d.source_id
LEFT JOIN moves{p} m ON m.entity = 'deal' AND m.entity_id = d.id
LEFT JOIN stages st ON st.entity = 'deal'
     AND st.pipeline_id = coalesce(m.pipeline_at, d.pipeline_id)
     AND st.stage_id = coalesce(m.stage_at, d.stage_id)
LEFT JOIN act{p} a ON a.entity = 'deal' AND a.entity_id = d.id;

CREATE OR REPLACE TEMP VIEW l{p} AS
SELECT l.id, l.title, l.amount, l.created_at, l.closed_at, l.semantic, l.source_id,
       src.name AS source, st.sort AS stage_sort,
       l.closed_at >= {period_start} AND l.closed_at < {period_end}
       AND l.closed_at < {as_of_end} AS closed_in_period, l.assigned_id AS employee_id, u.name AS employee,
       u.department_id, dep.name AS department, st.name AS stage,
       a.last_activity_at, a.last_activity_kind,
       coalesce(a.planned, 0) = 0 AS no_planned_activity,
       greatest(l.created_at, m.last_stage_change_at, a.last_activity_at) AS last_touch_at,
       l.created_at >= {period_start} AND l.created_at < {period_end} AS created_in_period,
       l.created_at < {as_of_end} AND (l.closed_at IS NULL OR l.closed_at >= {as_of_end}) AS is_open
FROM leads l
LEFT JOIN users u ON u.id = l.assigned_id
LEFT JOIN departments dep ON dep.id = u.department_id
LEFT JOIN moves{p} m ON m.entity = 'lead' AND m.entity_id = l.id
LEFT JOIN stages st ON st.entity = 'lead' AND st.stage_id = coalesce(m.stage_at, l.status_id)
LEFT JOIN sources src ON src.id = l.source_id
LEFT JOIN act{p} a ON a.entity = 'lead' AND a.entity_id = l.id;

CREATE OR REPLACE TEMP TABLE df{p} AS
SELECT *, DATE '{as_of}' - last_touch_at::DATE AS days_since_touch,
       is_open AND DATE '{as_of}' - last_touch_at::DATE >= {deal_days} AS is_forgotten
FROM d{p};

CREATE OR REPLACE TEMP TABLE lf{p} AS
SELECT *, DATE '{as_of}' - last_touch_at::DATE AS days_since_touch,
       is_open AND DATE '{as_of}' - last_touch_at::DATE >= {lead_days} AS is_forgotten
FROM l{p};

