-- Sales dynamics (`sales_dynamics`): the `leads`, `deals`, `sales`, `by_employee` (with
-- totals) and `deals_list` blocks, written from the definitions of each number over the facts of
-- common.sql. A repeat sale is a won deal whose company had a won deal closed before it
-- (ties by id); no company, no repeat.
-- uses: common.sql

-- setup
CREATE OR REPLACE TEMP TABLE sd AS
SELECT *, semantic = 'success' AND closed_in_period AS is_won,
       closed_at::DATE - created_at::DATE AS cycle
FROM df;

CREATE OR REPLACE TEMP TABLE ranked AS
SELECT *, is_won AND company_id IS NOT NULL AND row_number() OVER (
           PARTITION BY company_id, semantic = 'success' AND closed_at < {as_of_end}
           ORDER BY closed_at, id) > 1 AS is_repeat
FROM sd;

CREATE OR REPLACE TEMP TABLE sd_by_emp AS
SELECT employee_id, employee,
       count(*) FILTER (WHERE created_in_period) AS created,
       count(*) FILTER (WHERE is_won) AS won_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS won_sum,
       avg(cycle) FILTER (WHERE is_won) AS cycle_days,
       count(*) FILTER (WHERE is_forgotten) AS forgotten,
       count(*) FILTER (WHERE is_repeat) AS repeat_count
FROM ranked GROUP BY ALL;

-- block: leads
SELECT count(*) FILTER (WHERE created_in_period) AS received,
       count(*) FILTER (WHERE is_forgotten) AS forgotten
FROM lf;

-- block: deals
SELECT count(*) FILTER (WHERE created_in_period) AS created,
       count(*) FILTER (WHERE is_won) AS won_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS won_sum,
       sum(amount) FILTER (WHERE is_won) / nullif(count(*) FILTER (WHERE is_won), 0) AS avg_check,
       avg(cycle) FILTER (WHERE is_won) AS cycle_days,
       count(*) FILTER (WHERE is_forgotten) AS forgotten
FROM sd;

-- block: sales
SELECT count(*) FILTER (WHERE is_won) - count(*) FILTER (WHERE is_repeat) AS new_count,
       count(*) FILTER (WHERE is_repeat) AS repeat_count,
       100.0 * count(*) FILTER (WHERE is_repeat) / nullif(count(*) FILTER (WHERE is_won), 0) AS repeat_share
FROM ranked;

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

-- block: deals_list
SELECT id, title, employee, pipeline, stage, semantic, amount, created_at, closed_at,
       closed_at::DATE - created_at::DATE AS cycle_days,
       '{portal}' || '/crm/deal/details/' || id || '/' AS url
FROM df
WHERE created_in_period OR closed_in_period
ORDER BY created_at DESC, id;
