-- Sales dynamics (`sales_dynamics`): the `leads`, `deals`, `sales` (each with the previous
-- period it is compared with), `by_employee` (with totals), `time_in_stage` and `deals_list`
-- blocks, written from the definitions of each number over the facts of
-- common.sql. A repeat sale is a won deal whose company had a won deal closed before it
-- (ties by id); no company, no repeat. A stage visit lasts from its change to the next
-- change of the same lead or deal, or to the end of `as_of`; it belongs to the lead's or
-- deal's assignee.
-- uses: common.sql
-- uses: common.sql previous

-- setup (each period)
CREATE OR REPLACE TEMP TABLE sd{p} AS
SELECT *, semantic = 'success' AND closed_in_period AS is_won,
       closed_at::DATE - created_at::DATE AS cycle
FROM df{p};

CREATE OR REPLACE TEMP TABLE ranked{p} AS
SELECT *, is_won AND company_id IS NOT NULL AND row_number() OVER (
           PARTITION BY company_id, semantic = 'success' AND closed_at < {as_of_end}
           ORDER BY closed_at, id) > 1 AS is_repeat
FROM sd{p};

-- setup
CREATE OR REPLACE TEMP TABLE visits AS
SELECT h.entity, h.pipeline_id, h.stage_id, st.name AS stage,
       coalesce(ld.assigned_id, dl.assigned_id) AS employee_id, u.name AS employee,
       (epoch_us(coalesce(CASE WHEN h.next_at < {as_of_end} THEN h.next_at END, {as_of_end}))
        - epoch_us(h.changed_at)) / 86400000000.0 AS visit_days
FROM (SELECT *, lead(changed_at) OVER (PARTITION BY entity, entity_id ORDER BY changed_at) AS next_at
      FROM stage_history) h
LEFT JOIN stages st ON st.entity = h.entity AND coalesce(st.pipeline_id, -1) = coalesce(h.pipeline_id, -1)
     AND st.stage_id = h.stage_id
LEFT JOIN leads ld ON h.entity = 'lead' AND ld.id = h.entity_id
LEFT JOIN deals dl ON h.entity = 'deal' AND dl.id = h.entity_id
LEFT JOIN users u ON u.id = coalesce(ld.assigned_id, dl.assigned_id)
WHERE h.changed_at >= {period_start} AND h.changed_at < {period_end} AND h.changed_at < {as_of_end}
  AND st.semantic = 'process';

CREATE OR REPLACE TEMP TABLE sd_by_emp AS
SELECT employee_id, employee,
       count(*) FILTER (WHERE created_in_period) AS created,
       count(*) FILTER (WHERE is_won) AS won_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS won_sum,
       avg(cycle) FILTER (WHERE is_won) AS cycle_days,
       count(*) FILTER (WHERE is_forgotten) AS forgotten,
       count(*) FILTER (WHERE is_repeat) AS repeat_count
FROM ranked GROUP BY ALL;

-- block: leads (each period)
SELECT count(*) FILTER (WHERE created_in_period) AS received,
       count(*) FILTER (WHERE is_forgotten) AS forgotten
FROM lf{p};

-- block: deals (each period)
SELECT count(*) FILTER (WHERE created_in_period) AS created,
       count(*) FILTER (WHERE is_won) AS won_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS won_sum,
       sum(amount) FILTER (WHERE is_won) / nullif(count(*) FILTER (WHERE is_won), 0) AS avg_check,
       avg(cycle) FILTER (WHERE is_won) AS cycle_days,
       count(*) FILTER (WHERE is_forgotten) AS forgotten
FROM sd{p};

-- block: sales (each period)
SELECT count(*) FILTER (WHERE is_won) - count(*) FILTER (WHERE is_repeat) AS new_count,
       count(*) FILTER (WHERE is_repeat) AS repeat_count,
       100.0 * count(*) FILTER (WHERE is_repeat) / nullif(count(*) FILTER (WHERE is_won), 0) AS repeat_share
FROM ranked{p};

-- block: by_employee
SELECT k.employee_id, k.employee, coalesce(created, 0) AS created,
       coalesce(won_count, 0) AS won_count, coalesce(won_sum, 0) AS won_sum,
       won_sum / nullif(won_count, 0) AS avg_check, cycle_days,
       coalesce(forgotten, 0) AS forgotten,
       coalesce(won_count, 0) - coalesce(repeat_count, 0) AS new_count,
       coalesce(repeat_count, 0) AS repeat_count,
       100.0 * repeat_count / nullif(won_count, 0) AS repeat_share
FROM (SELECT u.id AS employee_id, u.name AS employee FROM users u WHERE u.active
      UNION SELECT employee_id, employee FROM sd_by_emp) k
LEFT JOIN sd_by_emp e ON e.employee_id IS NOT DISTINCT FROM k.employee_id
                     AND e.employee IS NOT DISTINCT FROM k.employee
ORDER BY won_sum DESC, k.employee, k.employee_id;

-- block: by_employee.totals
SELECT count(*) FILTER (WHERE created_in_period) AS created,
       count(*) FILTER (WHERE is_won) AS won_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS won_sum,
       sum(amount) FILTER (WHERE is_won) / nullif(count(*) FILTER (WHERE is_won), 0) AS avg_check,
       avg(cycle) FILTER (WHERE is_won) AS cycle_days,
       count(*) FILTER (WHERE is_forgotten) AS forgotten,
       count(*) FILTER (WHERE is_won) - count(*) FILTER (WHERE is_repeat) AS new_count,
       count(*) FILTER (WHERE is_repeat) AS repeat_count,
       100.0 * count(*) FILTER (WHERE is_repeat) / nullif(count(*) FILTER (WHERE is_won), 0) AS repeat_share
FROM ranked;

-- block: time_in_stage
SELECT entity, pipeline_id, stage_id, stage, employee_id, employee, avg_days, entries
FROM (SELECT entity, pipeline_id, stage_id, stage, employee_id, employee,
             avg(visit_days) AS avg_days, count(*) AS entries, 1 AS detail
      FROM visits GROUP BY entity, pipeline_id, stage_id, stage, employee_id, employee
      UNION ALL
      SELECT entity, pipeline_id, stage_id, stage, NULL, NULL,
             avg(visit_days), count(*), 0
      FROM visits GROUP BY entity, pipeline_id, stage_id, stage)
ORDER BY entity, pipeline_id NULLS FIRST, stage_id, detail, employee_id NULLS FIRST;

-- block: deals_list
SELECT id, title, employee, pipeline, stage, semantic, amount, created_at, closed_at,
       closed_at::DATE - created_at::DATE AS cycle_days,
       '{portal}' || '/crm/deal/details/' || id || '/' AS url
FROM df
WHERE created_in_period OR closed_in_period
ORDER BY created_at DESC, id;
