-- Forget-me-not (`forgotten`), every block, written from the definitions of each number over the
-- facts of common.sql (`lf`: leads, `df`: deals).
-- uses: common.sql

-- block: totals
SELECT (SELECT count(*) FILTER (WHERE created_in_period) FROM lf) AS leads_created,
       (SELECT count(*) FILTER (WHERE created_in_period) FROM df) AS deals_created,
       (SELECT count(*) FILTER (WHERE is_open) FROM lf) AS open_leads,
       (SELECT count(*) FILTER (WHERE is_open) FROM df) AS open_deals,
       (SELECT count(*) FILTER (WHERE is_forgotten) FROM lf) AS forgotten_leads,
       (SELECT count(*) FILTER (WHERE is_forgotten) FROM df) AS forgotten_deals,
       (SELECT coalesce(sum(coalesce(amount, 0)) FILTER (WHERE is_forgotten), 0) FROM df) AS forgotten_sum;

-- setup
-- Both groupings at once: by department and by employee, the same measures.
CREATE OR REPLACE TEMP TABLE grouped AS
WITH facts AS (
    SELECT 'lead' AS entity, department_id, department, employee_id, employee, amount,
           is_forgotten, created_in_period FROM lf
    UNION ALL
    SELECT 'deal', department_id, department, employee_id, employee, amount,
           is_forgotten, created_in_period FROM df
), rows AS (
    SELECT 'department' AS level, department_id AS key_id, department AS key_name, * FROM facts
    UNION ALL
    SELECT 'employee', employee_id, employee, * FROM facts
)
SELECT level, key_id, key_name,
       count(*) FILTER (WHERE entity = 'lead' AND is_forgotten) AS forgotten_leads,
       count(*) FILTER (WHERE entity = 'deal' AND is_forgotten) AS forgotten_deals,
       coalesce(sum(coalesce(amount, 0)) FILTER (WHERE entity = 'deal' AND is_forgotten), 0) AS forgotten_sum,
       count(*) FILTER (WHERE entity = 'deal' AND created_in_period) AS deals_created,
       round(100.0 * count(*) FILTER (WHERE entity = 'deal' AND is_forgotten AND created_in_period)
             / nullif(count(*) FILTER (WHERE entity = 'deal' AND created_in_period), 0), 2) AS forgotten_share
FROM rows GROUP BY ALL;

-- block: by_department
SELECT key_id AS department_id, key_name AS department, * EXCLUDE (level, key_id, key_name)
FROM grouped WHERE level = 'department'
ORDER BY forgotten_deals DESC, department NULLS LAST, department_id NULLS LAST;

-- block: by_employee
SELECT key_id AS employee_id, key_name AS employee, * EXCLUDE (level, key_id, key_name)
FROM grouped WHERE level = 'employee'
ORDER BY forgotten_deals DESC, employee NULLS LAST, employee_id NULLS LAST;

-- block: forgotten_leads
SELECT id, title, employee, stage, amount, last_touch_at, days_since_touch,
       last_activity_kind,
       CASE WHEN last_activity_at IS NULL THEN 'no_activity' ELSE 'stale' END AS reason,
       no_planned_activity,
       '{portal}' || '/crm/lead/details/' || id || '/' AS url
FROM lf WHERE is_forgotten
ORDER BY days_since_touch DESC, id;

-- block: forgotten_deals
SELECT id, title, employee, stage, amount, last_touch_at, days_since_touch,
       last_activity_kind,
       CASE WHEN last_activity_at IS NULL THEN 'no_activity' ELSE 'stale' END AS reason,
       no_planned_activity,
       '{portal}' || '/crm/deal/details/' || id || '/' AS url
FROM df WHERE is_forgotten
ORDER BY days_since_touch DESC, id;
