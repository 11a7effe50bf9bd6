-- Sales plan (`sales_plan`): the `plan_fact` and `sales` (each with the previous period it
-- is compared with) and `by_department` (with totals) blocks, written from the definitions of each number over the facts of common.sql. A
-- month's plan counts for the period in proportion to its days inside it; an employee's
-- plan counts for the employee's department, a department's own plan for itself.
-- uses: common.sql
-- uses: common.sql previous

-- setup (each period)
CREATE OR REPLACE TEMP TABLE plan_rows{p} AS
SELECT coalesce(u.department_id, p.department_id) AS department_id, dep.name AS department,
       p.plan_amount * CASE WHEN overlap <= 0 THEN 0.0 ELSE overlap * 1.0 / month_days END AS plan
FROM (SELECT *, least(month + INTERVAL 1 MONTH - INTERVAL 1 DAY, {to_date})::DATE
                - greatest(month, {from_date})::DATE + 1 AS overlap,
             (month + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE - month + 1 AS month_days
      FROM plans) p
LEFT JOIN users u ON u.id = p.employee_id
LEFT JOIN departments dep ON dep.id = coalesce(u.department_id, p.department_id);

CREATE OR REPLACE TEMP TABLE sp{p} AS
SELECT *, semantic = 'success' AND closed_in_period AS is_won,
       is_won AND company_id IS NOT NULL AND row_number() OVER (
           PARTITION BY company_id, semantic = 'success' AND closed_at < {as_of_end}
           ORDER BY closed_at, id) > 1 AS is_repeat
FROM df{p};

-- setup
CREATE OR REPLACE TEMP TABLE plan_by_dep AS
SELECT department_id, department, coalesce(sum(plan), 0) AS plan FROM plan_rows GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE deals_by_dep AS
SELECT department_id, department,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS fact,
       count(*) FILTER (WHERE is_open) AS open_count,
       coalesce(sum(amount) FILTER (WHERE is_open), 0) AS open_sum,
       count(*) FILTER (WHERE is_won) AS won_count,
       count(*) FILTER (WHERE is_repeat) AS repeat_count
FROM sp GROUP BY ALL;

-- block: plan_fact (each period)
SELECT plan, fact, 100.0 * fact / nullif(plan, 0) AS completion_pct,
       greatest(plan - fact, 0) AS remaining
FROM (SELECT (SELECT coalesce(sum(plan), 0) FROM plan_rows{p}) AS plan,
             (SELECT coalesce(sum(amount) FILTER (WHERE is_won), 0) FROM sp{p}) AS fact);

-- block: sales (each period)
SELECT count(*) FILTER (WHERE is_won) AS won_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS won_sum,
       sum(amount) FILTER (WHERE is_won) / nullif(count(*) FILTER (WHERE is_won), 0) AS avg_check,
       count(*) FILTER (WHERE is_won) - count(*) FILTER (WHERE is_repeat) AS new_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0)
         - coalesce(sum(amount) FILTER (WHERE is_repeat), 0) AS new_sum,
       count(*) FILTER (WHERE is_repeat) AS repeat_count,
       coalesce(sum(amount) FILTER (WHERE is_repeat), 0) AS repeat_sum,
       100.0 * count(*) FILTER (WHERE is_repeat) / nullif(count(*) FILTER (WHERE is_won), 0) AS repeat_share
FROM sp{p};

-- block: by_department
SELECT k.department_id, k.department, coalesce(p.plan, 0) AS plan, coalesce(d.fact, 0) AS fact,
       100.0 * coalesce(d.fact, 0) / nullif(coalesce(p.plan, 0), 0) AS completion_pct,
       greatest(coalesce(p.plan, 0) - coalesce(d.fact, 0), 0) AS remaining,
       coalesce(d.open_count, 0) AS open_count, coalesce(d.open_sum, 0) AS open_sum,
       100.0 * d.repeat_count / nullif(d.won_count, 0) AS repeat_share
FROM (SELECT department_id, department FROM plan_by_dep
      UNION SELECT department_id, department FROM deals_by_dep) k
LEFT JOIN plan_by_dep p ON p.department_id IS NOT DISTINCT FROM k.department_id
                       AND p.department IS NOT DISTINCT FROM k.department
LEFT JOIN deals_by_dep d ON d.department_id IS NOT DISTINCT FROM k.department_id
                        AND d.department IS NOT DISTINCT FROM k.department
ORDER BY k.department_id NULLS LAST, k.department;

-- block: by_department.totals
SELECT p.plan, d.fact, 100.0 * d.fact / nullif(p.plan, 0) AS completion_pct,
       greatest(p.plan - d.fact, 0) AS remaining, d.open_count, d.open_sum,
       100.0 * d.repeat_count / nullif(d.won_count, 0) AS repeat_share
FROM (SELECT coalesce(sum(plan), 0) AS plan FROM plan_rows) p,
     (SELECT coalesce(sum(amount) FILTER (WHERE is_won), 0) AS fact,
             count(*) FILTER (WHERE is_open) AS open_count,
             coalesce(sum(amount) FILTER (WHERE is_open), 0) AS open_sum,
             count(*) FILTER (WHERE is_won) AS won_count,
             count(*) FILTER (WHERE is_repeat) AS repeat_count FROM sp) d;
