-- Manager efficiency (`manager_efficiency`): the `activity_index` and `employee_results`
-- blocks with their totals rows, written from the definitions of each number. Every active employee has
-- a row, and so does everyone responsible for an activity or assigned a lead or deal (with
-- zeros when nothing of theirs counts in the period). Placeholders as in forgotten.sql.

-- setup
CREATE OR REPLACE TEMP TABLE weights AS
SELECT * FROM (VALUES ('meeting', 5.0), ('call', 2.0), ('email', 1.0), ('task', 1.0),
                      ('comment', 1.0), ('other', 1.0)) w(kind, weight);

CREATE OR REPLACE TEMP TABLE staff AS
SELECT u.id AS employee_id, u.name AS employee, dep.name AS department
FROM users u LEFT JOIN departments dep ON dep.id = u.department_id
WHERE u.active;

CREATE OR REPLACE TEMP TABLE act_rows AS
SELECT a.responsible_id AS employee_id, u.name AS employee, dep.name AS department, a.kind,
       coalesce(w.weight, 0) AS weight,
       a.created_at >= {period_start} AND a.created_at < {period_end}
       AND a.created_at < {as_of_end} AS counted
FROM activities a
LEFT JOIN users u ON u.id = a.responsible_id
LEFT JOIN departments dep ON dep.id = u.department_id
LEFT JOIN weights w ON w.kind = a.kind;

CREATE OR REPLACE TEMP TABLE deal_rows AS
SELECT d.assigned_id AS employee_id, u.name AS employee, d.amount,
       d.semantic = 'success' AND cip AS is_won,
       d.semantic = 'failure' AND cip AS is_lost,
       d.created_at < {as_of_end} AND (d.closed_at IS NULL OR d.closed_at >= {as_of_end}) AS is_open,
       d.closed_at::DATE - d.created_at::DATE AS cycle
FROM (SELECT *, closed_at >= {period_start} AND closed_at < {period_end}
                AND closed_at < {as_of_end} AS cip FROM deals) d
LEFT JOIN users u ON u.id = d.assigned_id;

CREATE OR REPLACE TEMP TABLE lead_rows AS
SELECT l.assigned_id AS employee_id, u.name AS employee,
       l.created_at < {as_of_end} AND (l.closed_at IS NULL OR l.closed_at >= {as_of_end}) AS is_open
FROM leads l LEFT JOIN users u ON u.id = l.assigned_id;

CREATE OR REPLACE TEMP TABLE by_emp_dep AS
SELECT employee_id, employee, department,
       count(*) FILTER (WHERE counted AND kind = 'meeting') AS meetings,
       count(*) FILTER (WHERE counted AND kind = 'call') AS calls,
       count(*) FILTER (WHERE counted AND kind = 'email') AS emails,
       count(*) FILTER (WHERE counted AND kind = 'task') AS tasks,
       count(*) FILTER (WHERE counted AND kind = 'comment') AS comments,
       count(*) FILTER (WHERE counted AND kind NOT IN ('meeting', 'call', 'email', 'task', 'comment')) AS other,
       coalesce(sum(weight) FILTER (WHERE counted), 0) AS points
FROM act_rows GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE index_rows AS
SELECT k.employee_id, k.employee, k.department,
       coalesce(a.meetings, 0) AS meetings, coalesce(a.calls, 0) AS calls,
       coalesce(a.emails, 0) AS emails, coalesce(a.tasks, 0) AS tasks,
       coalesce(a.comments, 0) AS comments, coalesce(a.other, 0) AS other,
       coalesce(a.points, 0) AS points
FROM (SELECT employee_id, employee, department FROM staff
      UNION SELECT employee_id, employee, department FROM by_emp_dep) k
LEFT JOIN by_emp_dep a
  ON a.employee_id IS NOT DISTINCT FROM k.employee_id
 AND a.employee IS NOT DISTINCT FROM k.employee
 AND a.department IS NOT DISTINCT FROM k.department;

CREATE OR REPLACE TEMP TABLE points_by_emp AS
SELECT employee_id, employee, coalesce(sum(weight) FILTER (WHERE counted), 0) AS points
FROM act_rows GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE deals_by_emp AS
SELECT employee_id, employee,
       count(*) FILTER (WHERE is_won) AS won_count,
       coalesce(sum(amount) FILTER (WHERE is_won), 0) AS won_sum,
       count(*) FILTER (WHERE is_lost) AS lost_count,
       coalesce(sum(amount) FILTER (WHERE is_lost), 0) AS lost_sum,
       count(*) FILTER (WHERE is_open) AS open_count,
       coalesce(sum(amount) FILTER (WHERE is_open), 0) AS open_sum,
       avg(cycle) FILTER (WHERE is_won) AS cycle_days
FROM deal_rows GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE leads_by_emp AS
SELECT employee_id, employee, count(*) FILTER (WHERE is_open) AS leads_in_work
FROM lead_rows GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE result_rows AS
SELECT k.employee_id, k.employee, coalesce(p.points, 0) AS points,
       coalesce(l.leads_in_work, 0) AS leads_in_work,
       coalesce(d.won_count, 0) AS won_count, coalesce(d.won_sum, 0) AS won_sum,
       coalesce(d.lost_count, 0) AS lost_count, coalesce(d.lost_sum, 0) AS lost_sum,
       coalesce(d.open_count, 0) AS open_count, coalesce(d.open_sum, 0) AS open_sum,
       d.cycle_days
FROM (SELECT employee_id, employee FROM staff
      UNION SELECT employee_id, employee FROM points_by_emp
      UNION SELECT employee_id, employee FROM deals_by_emp
      UNION SELECT employee_id, employee FROM leads_by_emp) k
LEFT JOIN points_by_emp p ON p.employee_id IS NOT DISTINCT FROM k.employee_id AND p.employee IS NOT DISTINCT FROM k.employee
LEFT JOIN deals_by_emp d ON d.employee_id IS NOT DISTINCT FROM k.employee_id AND d.employee IS NOT DISTINCT FROM k.employee
LEFT JOIN leads_by_emp l ON l.employee_id IS NOT DISTINCT FROM k.employee_id AND l.employee IS NOT DISTINCT FROM k.employee;

-- block: activity_index
SELECT employee_id, employee, department, meetings, calls, emails, tasks, comments, other,
       points, 100.0 * points / nullif(sum(points) OVER (), 0) AS activity_index
FROM index_rows
ORDER BY activity_index DESC NULLS LAST, employee, employee_id, department;

-- block: activity_index.totals
SELECT sum(meetings) AS meetings, sum(calls) AS calls, sum(emails) AS emails,
       sum(tasks) AS tasks, sum(comments) AS comments, sum(other) AS other,
       sum(points) AS points,
       100.0 * sum(points) / nullif(sum(points), 0) AS activity_index
FROM index_rows;

-- block: employee_results
SELECT employee_id, employee,
       100.0 * points / nullif(sum(points) OVER (), 0) AS activity_index,
       leads_in_work, won_count, won_sum, won_sum / nullif(won_count, 0) AS avg_check,
       100.0 * won_count / nullif(won_count + lost_count, 0) AS win_rate,
       cycle_days, lost_count, lost_sum, open_count, open_sum
FROM result_rows
ORDER BY won_sum DESC, employee, employee_id;

-- block: employee_results.totals
SELECT 100.0 * sum(points) / nullif(sum(points), 0) AS activity_index,
       sum(leads_in_work) AS leads_in_work, sum(won_count) AS won_count,
       sum(won_sum) AS won_sum, sum(won_sum) / nullif(sum(won_count), 0) AS avg_check,
       100.0 * sum(won_count) / nullif(sum(won_count) + sum(lost_count), 0) AS win_rate,
       (SELECT avg(cycle) FILTER (WHERE is_won) FROM deal_rows) AS cycle_days,
       sum(lost_count) AS lost_count, sum(lost_sum) AS lost_sum,
       sum(open_count) AS open_count, sum(open_sum) AS open_sum
FROM result_rows;
